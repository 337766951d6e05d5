"""Many FastAGI calls held open at once, the way Asterisk holds callers listening to a menu: each
call sends its environment, every command is answered as a real Asterisk answers it, and at the
menu's first WAIT FOR DIGIT (or GET DATA) the caller goes quiet, so the call stays live."""
from __future__ import annotations

import asyncio
import time

MENU_COMMANDS = ("WAIT FOR DIGIT", "GET DATA")


def environment(callerid: str, uniqueid: str, script: str = "2112") -> bytes:
    lines = {"agi_network": "yes", "agi_network_script": script, "agi_channel": f"PJSIP/drill-{uniqueid}",
             "agi_language": "en", "agi_type": "PJSIP", "agi_uniqueid": uniqueid, "agi_callerid": callerid,
             "agi_dnid": script}
    return ("".join(f"{k}: {v}\n" for k, v in lines.items()) + "\n").encode()


async def _hold(port: int, callerid: str, uniqueid: str, held: asyncio.Event, writers: list) -> bool:
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    writers.append(writer)
    writer.write(environment(callerid, uniqueid))
    await writer.drain()
    while True:
        line = (await reader.readline()).decode(errors="replace").strip()
        if not line:
            return False  # closed before the menu
        if line.startswith(MENU_COMMANDS):
            return True  # the caller listens and keys nothing: held
        writer.write(b"200 result=1\n" if line == "ANSWER" else b"200 result=0 endpos=8000\n")
        await writer.drain()


class HeldCalls:
    """Hold `count` calls in a thread's own loop; `writers` stay open until `release()`."""

    def __init__(self, port: int, callers: list[str], prefix: str):
        self.port, self.callers, self.prefix = port, callers, prefix
        self.writers: list = []
        self.held = 0
        self.seconds_to_hold = 0.0
        self.loop = asyncio.new_event_loop()

    def hold(self, count: int, concurrency: int = 200) -> int:
        async def run() -> int:
            gate = asyncio.Semaphore(concurrency)
            event = asyncio.Event()

            async def one(i: int) -> bool:
                async with gate:
                    return await _hold(self.port, self.callers[i % len(self.callers)], f"{self.prefix}.{i}",
                                       event, self.writers)

            results = await asyncio.gather(*(one(i) for i in range(count)), return_exceptions=True)
            return sum(1 for r in results if r is True)

        started = time.monotonic()
        self.held = self.loop.run_until_complete(run())
        self.seconds_to_hold = time.monotonic() - started
        return self.held

    def release(self) -> None:
        for writer in self.writers:
            writer.close()
        self.loop.run_until_complete(asyncio.sleep(0))
        self.loop.close()
