"""The relay's remote commands (sans-IO): a down envelope checked field by field, the answer."""
# Down (cp/<id>/down, no "id": never taken for a reply):
#   {"v":1,"cmd":"remote_start","cid":..,"deadline":<unix s>,"session_id":..,"evse_id":..,
#    "evco_id":..,"provider_id":..,"cpo_session_id":<str|null>,"product_id":<str|null>}
#   {"v":1,"cmd":"remote_stop","cid":..,"deadline":..,"session_id":..,"evse_id":..,
#    "provider_id":..}
# Up (cp/<id>/up): {"v":1,"reply":"<cid>","code":"<OICP code>","info":"<short text>"}
import json

from micropython import const

from cpagent.oicp.ids import (
    bad,
    check_cpo_session_id,
    check_evco_id,
    check_evse_id,
    check_product_id,
    check_provider_id,
    check_session_id,
)

COMMANDS = ("remote_start", "remote_stop")
_MAX_CID = const(64)  # a command id longer than this is not the relay's: no answer
_MAX_INFO = const(80)  # the answer's text is cut here: Hubject's StatusCode description is short


def cid(env):
    """The command id to answer to, or None if there is none usable (then nothing is answered)."""
    c = env.get("cid")
    return c if isinstance(c, str) and 0 < len(c) <= _MAX_CID else None


def parse(env):
    """A remote command's fields as a dict (session_id, evse_id, provider_id, deadline and, for
    a start, evco_id, cpo_session_id, product_id); raises a ValueError (FieldError) naming the
    field."""
    cmd = env.get("cmd")
    if cmd not in COMMANDS:
        bad("cmd", "one of " + "|".join(COMMANDS), cmd)
    d = env.get("deadline")
    if isinstance(d, bool) or not isinstance(d, int):
        bad("deadline", "unix seconds as an integer", d)
    f = {"cmd": cmd, "deadline": d}
    start = cmd == "remote_start"
    for k, check in _NEEDED + (_START if start else ()):
        f[k] = check(env.get(k), k)
    for k, check in _OPTIONAL if start else ():
        v = env.get(k)
        f[k] = None if v is None else check(v, k)
    return f


_NEEDED = (("session_id", check_session_id), ("evse_id", check_evse_id),
           ("provider_id", check_provider_id))
_START = (("evco_id", check_evco_id),)
_OPTIONAL = (("cpo_session_id", check_cpo_session_id), ("product_id", check_product_id))


def reply(cid, code, info):
    """The answer's payload (bytes) for cp/<id>/up."""
    # Formatted, not a dict dumped: MicroPython's dicts keep no key order.
    return ('{"v":1,"reply":%s,"code":%s,"info":%s}' % (
        json.dumps(cid), json.dumps(code), json.dumps(info[:_MAX_INFO]))).encode()

