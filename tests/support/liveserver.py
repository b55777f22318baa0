"""The real app on a real uvicorn server in a thread, and Debian's chromium, for the browser tests."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
import uvicorn

from adapters.http.app import create_app
from adapters.runtime.serving import UVICORN_OPTIONS
from adapters.runtime.settings import Settings
from tests.support.serverutil import free_port

CHROMIUM = shutil.which("chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
TIMEOUT_MS = 30_000  # the first answers wait on model warm-up on a shared 2-core machine


@contextmanager
def uvicorn_thread(app, host: str = "127.0.0.1", **config) -> Iterator[tuple[int, threading.Thread]]:
    """`app` on a real uvicorn server in a thread, with the options `frontdesk serve` gives uvicorn (its own
    proxy handling off among them), until the block ends; yields (port, thread) once it listens."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning",
                                           **{**UVICORN_OPTIONS, **config}))
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield port, thread
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@contextmanager
def live_app(settings: Settings, timeout: float = 180) -> Iterator[str]:
    """Serve `create_app(settings)` on 127.0.0.1 (`uvicorn_thread`) until the block ends; yields the base URL once
    ready."""
    app = create_app(settings)
    with uvicorn_thread(app) as (port, thread):
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200 and app.state.components.bot is not None:
                    break
            except httpx.HTTPError:
                pass
            assert thread.is_alive() and time.monotonic() < deadline, "server did not become ready"
            time.sleep(0.2)
        yield url


@contextmanager
def chromium() -> Iterator:
    """Debian's chromium through Playwright (never a downloaded browser)."""
    if CHROMIUM is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium, or `make browser`)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()

