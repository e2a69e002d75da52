"""Record real ARI event frames from the sandbox into tests/data/ari_events.jsonl (for parser tests).

Run with the sandbox up and callcore NOT running (this script takes the `callcore` app):
    .venv/bin/python scripts/record-ari-events.py
It answers a sipp call to DID 1000, plays a prompt, collects DTMF 7, originates agent01, bridges both,
then hangs up; every frame Asterisk sends is written as one JSON line.
"""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from callcore.ari.client import AriClient  # noqa: E402
from tests.sip import AgentPhone, Dtmf, run_caller  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "tests" / "data" / "ari_events.jsonl"


async def main() -> None:
    ari = AriClient("http://127.0.0.1:8088", "callcore", "callcore-sandbox", "callcore")
    frames: list[dict] = []
    done = asyncio.Event()
    async with ari.session.ws_connect(
        "ws://127.0.0.1:8088/ari/events", params={"app": "callcore"}, headers=ari.auth_headers
    ) as ws:
        async def reader() -> None:
            caller = None
            async for msg in ws:
                ev = json.loads(msg.data)
                frames.append(ev)
                t = ev["type"]
                if t == "StasisStart" and ev["args"][:1] == ["inbound"]:
                    caller = ev["channel"]["id"]
                    await ari.channels.answer(caller)
                    await ari.channels.play(caller, ["sound:hello-world"], playback_id=str(uuid.uuid4()))
                elif t == "ChannelDtmfReceived" and ev["channel"]["id"] == caller:
                    await ari.channels.originate("PJSIP/agent01", app="callcore", app_args="leg", channel_id=str(uuid.uuid4()))
                elif t == "StasisStart" and ev["args"][:1] == ["leg"]:
                    bridge = await ari.bridges.create(str(uuid.uuid4()))
                    await ari.bridges.add_channel(bridge.id, [caller, ev["channel"]["id"]])
                    await asyncio.sleep(1)
                    await ari.channels.hangup(ev["channel"]["id"])
                    await ari.channels.hangup(caller)
                    await asyncio.sleep(1)
                    await ari.bridges.destroy(bridge.id)
                    await asyncio.sleep(0.5)
                    done.set()

        task = asyncio.create_task(reader())
        with AgentPhone(1):
            await asyncio.to_thread(run_caller, "1000", [Dtmf("7", pause_before_ms=2000)], bye_timeout_ms=20000)
            await asyncio.wait_for(done.wait(), 20)
        task.cancel()
    await ari.close()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text("".join(json.dumps(f, sort_keys=True) + "\n" for f in frames))
    print(f"wrote {len(frames)} frames to {OUT}: {sorted({f['type'] for f in frames})}")


if __name__ == "__main__":
    asyncio.run(main())
