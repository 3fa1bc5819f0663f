"""The charger's side of the MQTT relay: downlink commands carried out, status published."""
# Only an MQTT charger imports this module (Agent.run for the status task, Agent.command() and
# Charger.remote() with the first command), so an HTTP charger never holds its code.
import json

from micropython import const

from cpagent.oicp import remote
from cpagent.session import IDLE

_MAX_REMOTE = const(8)  # answers to remote commands kept for their duplicates; the oldest goes


async def publish_status(agent):
    """Agent.run's status task."""
    # A JSON copy of the status on cp/<id>/status while connected: at each connect and
    # whenever the link state or the dead letters change (not retained: the retained
    # value stays the client's online/offline).
    # A reconnect after the first also journals every EVSE's status again: the relay may
    # have turned the will into OutOfService meanwhile.
    sent = None
    connects = 1
    while True:
        up = agent.uplink.client.up
        n = agent.uplink.client.connects
        if n > connects:
            connects = n
            agent.charger.push_status()
            agent.link.kick()
        now = (agent.link.state, len(agent.journal.dead), up)
        if up and now != sent:  # the stats (lists, a dict) are built only for a change
            s = agent.stats()
            await agent.uplink.status('{"link":"%s","pending":%d,"dead":%d,"dead_reasons":%s}'
                                     % (s["link"], s["pending"], s["dead"],
                                        json.dumps(s["dead_reasons"])))
        sent = now if up else None
        await agent.board.sleep_ms(1000)


def command(agent, env):
    """Agent.command(): a command envelope from the downlink."""
    c = env.get("cmd")
    m = env.get("msg_id")
    if c in remote.COMMANDS:
        _answer(agent, env)
    elif c == "requeue" and (m is None or isinstance(m, str)):
        agent.requeue(m)
    else:
        agent._warn("downlink command ignored: expected {\"cmd\":\"requeue\",\"msg_id\":"
                    "null or \"<id>\"}, got %s" % json.dumps(env)[:80])


def _answer(agent, env):
    # Runs before the command's PUBACK: an accepted start is on flash before its "000" is
    # queued, and a power cut before the PUBACK brings the command again (same answer).
    cid = remote.cid(env)
    if cid is None:
        agent._warn("remote command ignored: no usable cid, got %s" % json.dumps(env)[:80])
        return
    try:
        f = remote.parse(env)
    except ValueError as e:
        code, info = "501", "bad command: %s" % (e,)
    else:
        code, info = agent.charger.remote(f)
    agent.board.log(2, "%s %s: %s %s" % (env.get("cmd"), cid, code, info))
    agent.uplink.answer(remote.reply(cid, code, info))
    agent.link.kick()


def carry_out(ch, f):
    """Charger.remote(): a remote start or stop on charger ch -> (OICP code, short text)."""
    key = (f["cmd"], f["session_id"], f["evse_id"])
    for k, code, info in ch._remote:  # ((cmd, SessionID, EvseID), code, info), oldest first
        if k == key:
            return code, info
    i = ch._index(f["evse_id"])
    if i is None:
        code, info = "603", "EVSE unknown to this charger"
    elif f["cmd"] == "remote_start":
        code, info = _start(ch, i, f)
    else:
        code, info = _stop(ch, i, f)
    ch._remote.append((key, code, info))
    if len(ch._remote) > _MAX_REMOTE:
        ch._remote.pop(0)
    return code, info


def _running(ch, sid):
    for j, s in enumerate(ch.evses):
        if s.session_id == sid:
            return j
    return None


def _start(ch, i, f):
    j = _running(ch, f["session_id"])
    if j is not None:  # started before a restart lost the answer: the same "yes"
        return ("000", "started") if j == i else ("602", "session runs on another EVSE")
    now = ch.clock.now_unix()
    if now is None:
        return "501", "wall time not known: deadline not checkable"
    if now > f["deadline"]:
        return "501", "deadline passed: not started late"
    if ch.broken[i]:
        return "700", "out of order: " + ch.broken[i]
    if ch.evses[i].state != IDLE:
        return "602", "EVSE in use"
    if not ch.journal.can_open_session():
        return "501", "dead letters full" if ch.journal.dead_full() else "journal full"
    ch._apply(i, ch.evses[i].remote_start(
        f["session_id"], f["evco_id"], f["provider_id"], f["cpo_session_id"], f["product_id"]))
    return "000", "started: waiting for the EV"


def _stop(ch, i, f):
    # A stop past its deadline is still carried out: the driver wants the charging ended.
    j = _running(ch, f["session_id"])
    if j is None:
        return "400", "session unknown"
    if j != i:
        return "602", "session runs on another EVSE"
    ch._apply(i, ch.evses[i].remote_stop())
    return "000", "stopped"
