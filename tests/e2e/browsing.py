"""The dashboard served by uvicorn on a free port, and Debian's Chromium driven by Playwright: one way to do each,
for every browser and stream test."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import uvicorn
from playwright.sync_api import Browser, sync_playwright

from tests import services

OFFLINE = "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"
"""No host name resolves: nothing leaves this machine, whatever a page asks for (cheaper than routing every request)."""


@contextmanager
def serving(app: Any, **config: Any) -> Iterator[str]:
    """``app`` served on 127.0.0.1 (its lifespan run, as in production) until the block ends; yields its base URL
    without a trailing slash. ``config``: more ``uvicorn.Config`` options."""
    port = services.free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", **config))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        assert services.wait_for_port("127.0.0.1", port, 15), "the dashboard did not start"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@contextmanager
def chromium(*, offline: bool = True) -> Iterator[Browser]:
    """Debian's headless Chromium (a failure where CI requires the services, else a skip without it); ``offline``:
    no host name resolves but 127.0.0.1."""
    executable = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(executable).exists():
        services.unavailable("no chromium (Debian package chromium)")
    args = ["--no-sandbox", "--disable-gpu", *([OFFLINE] if offline else [])]
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=args)
        try:
            yield launched
        finally:
            launched.close()
