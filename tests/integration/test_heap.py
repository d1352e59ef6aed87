"""The server moves its start-up heap out of the garbage collector's reach once the catalog is in."""

from __future__ import annotations

import asyncio
import gc

from aiohttp import web

from unigate.app import create_app
from unigate.config import parse_config


async def test_served_app_freezes_its_startup_heap_after_the_catalog_loads() -> None:
    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    app = create_app(parse_config({}, where="<test>", env={"UNIGATE_LOCAL": "off"}), {"UNIGATE_LOCAL": "off"},
                     freeze_heap=True)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1)
    await runner.setup()
    try:
        for _ in range(200):  # the catalog loads in a thread; the freeze follows it
            if gc.get_freeze_count():
                break
            await asyncio.sleep(0.05)
        from unigate import catalog

        frozen = gc.get_freeze_count()
        # the catalog's objects (tens of thousands) are among the frozen ones
        assert frozen > 10_000, frozen
        assert catalog.lookup("openai", "gpt-4o-mini") is not None
    finally:
        gc.unfreeze()  # this test process builds many apps; keep them collectable
        await runner.cleanup()


async def test_apps_built_without_the_flag_leave_the_collector_alone() -> None:
    gc.unfreeze()
    app = create_app(parse_config({}, where="<test>", env={"UNIGATE_LOCAL": "off"}), {"UNIGATE_LOCAL": "off"})
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1)
    await runner.setup()
    try:
        await asyncio.sleep(0.3)
        assert gc.get_freeze_count() == 0
    finally:
        await runner.cleanup()
