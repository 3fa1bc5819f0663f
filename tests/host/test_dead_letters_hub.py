"""The mock hub refuses one session's charge detail record for good (022) while three other
sessions run: they complete in full, the refused record waits whole in the dead letters (its
body as sent), and requeued once the hub is fixed it is delivered exactly once."""
import asyncio
import json

from linkhub import CARDS, on_mock_hub


def test_a_refused_cdr_is_kept_whole_and_requeued_once(tmp_path):
    async def scenario(hub, box):
        await hub.add_fault("code", 1, match="ChargeDetailRecord", code="022")
        await box.full_session(0, CARDS[0])  # its CDR is the one refused
        assert len(box.journal.dead) == 1
        (dead,) = [json.loads(x) for x in box.journal.dead_lines()]
        assert dead["kind"] == "CDR" and dead["reason"].startswith("022"), dead
        assert dead["attempts"] == 1 and dead["path"].endswith("/charge-detail-record")
        refused = [e for e in hub.exchanges if e["operation"] == "ChargeDetailRecord"]
        assert len(refused) == 1 and refused[0]["code"] == "022" and refused[0]["refused"]
        assert dead["body"] == refused[0]["request"]  # whole, exactly as it was sent
        first = dead["body"]["SessionID"]
        export = tmp_path / "journal" / "dead.jsonl"  # what mpremote copies off a board
        assert [json.loads(x) for x in export.read_text().splitlines()] == [dead]
        # Three more sessions, two at once, while the dead letter waits.
        for i in (1, 2):
            await box.authorize(i, CARDS[i])
        for i in (1, 2):
            box.charge_and_stop(i, CARDS[i])
        await box.full_session(0, CARDS[3])
        await box.until(lambda: not box.pending(), "the other sessions delivered")
        closed = [s for s in hub.sessions() if s["cdr"] is not None]
        assert len(closed) == 3 and first not in [s["SessionID"] for s in closed]
        assert len(box.journal.dead) == 1 and hub.stats()["refused"] == 1
        # The hub is fixed (the fault was used up): requeue, delivered once.
        (new_id,) = box.journal.requeue()
        box.link.kick()
        await box.until(lambda: not box.pending() and not box.journal.dead, "requeued CDR")
        s = [x for x in hub.sessions() if x["SessionID"] == first][0]
        assert s["cdr"] == dead["body"] and s["state"] == "closed", s
        cdrs = [e for e in hub.exchanges if e["operation"] == "ChargeDetailRecord"
                and e["session_id"] == first and e["code"] == "000"]
        assert len(cdrs) == 1, cdrs
        assert box.link.stats["failed"] == 1
        assert not export.exists() or export.read_text() == ""

    asyncio.run(on_mock_hub(tmp_path, scenario))
