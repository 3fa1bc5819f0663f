"""The relay's remote commands (sans-IO): a down envelope checked field by field, the answer."""
# Down (cp/<id>/down, no "id": never taken for a reply):
#   {"v":1,"cmd":"remote_start","cid":..,"deadline":<unix s>,"session_id":..,"evse_id":..,
#    "evco_id":..,"provider_id":..,"cpo_session_id":<str|null>,"product_id":<str|null>}
#   {"v":1,"cmd":"remote_stop","cid":..,"deadline":..,"session_id":..,"evse_id":..,
#    "provider_id":..}
# Up (cp/<id>/up): {"v":1,"reply":"<cid>","code":"<OICP code>","info":"<short text>"}
import json

from micropython import const

from cpagent.oicp_ids import (
    bad,
    check_evco_id,
    check_evse_id,
    check_product_id,
    check_provider_id,
    check_session_id,
    check_str,
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
    f = {"cmd": cmd, "deadline": d, "session_id": check_session_id(env.get("session_id")),
         "evse_id": check_evse_id(env.get("evse_id")),
         "provider_id": check_provider_id(env.get("provider_id"))}
    if cmd == "remote_start":
        f["evco_id"] = check_evco_id(env.get("evco_id"))
        f["cpo_session_id"] = _opt(env, "cpo_session_id", 250)
        p = env.get("product_id")
        f["product_id"] = None if p is None else check_product_id(p)
    return f


def _opt(env, key, n):
    v = env.get(key)
    return None if v is None else check_str(v, key, n, 1)


def reply(cid, code, info):
    """The answer's payload (bytes) for cp/<id>/up."""
    return json.dumps({"v": 1, "reply": cid, "code": code, "info": info[:_MAX_INFO]},
                      separators=(",", ":")).encode()

