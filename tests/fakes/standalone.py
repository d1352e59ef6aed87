"""A fake upstream in a process of its own, for tests that load gateways in other processes:
`python -m tests.fakes.standalone` prints the port it serves on, then serves until SIGTERM.
(The fake in the test's own event loop would compete with the test's clients for one CPU.)"""

from __future__ import annotations

import asyncio
import signal
import sys

from tests.fakes.openai import FakeOpenAI


async def main() -> None:
    fake = FakeOpenAI()
    await fake.start()
    print(fake.port, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    while not stop.is_set():
        fake.requests.clear()  # nothing reads them across processes: keep memory flat
        try:
            await asyncio.wait_for(stop.wait(), 1.0)
        except TimeoutError:
            pass
    await fake.stop()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
