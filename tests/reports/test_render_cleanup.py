"""A PDF render that times out leaves no Chromium process behind (its whole process group is killed)."""

from __future__ import annotations

import asyncio
import shutil
import socket
from pathlib import Path

import psutil
import pytest

from reports.render import RenderError, html_to_pdf

pytestmark = pytest.mark.integration
needs_chromium = pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed")


def _gone(p: psutil.Process) -> bool:
    try:
        return not p.is_running() or p.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@needs_chromium
async def test_timeout_kills_chromium_and_all_its_helpers() -> None:
    with socket.socket() as silent:  # accepts connections (backlog) and never answers: the page never loads
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        html = f'<html><head><script src="http://127.0.0.1:{port}/never.js"></script></head><body>x</body></html>'
        me = psutil.Process()
        before = {p.pid for p in me.children(recursive=True)}  # e.g. the session's influxd: not the render's
        render = asyncio.create_task(html_to_pdf(html, timeout_s=6.0))
        seen: dict[int, psutil.Process] = {}
        while not render.done():
            for p in me.children(recursive=True):
                if p.pid not in before:
                    seen.setdefault(p.pid, p)
            await asyncio.sleep(0.1)
        with pytest.raises(RenderError, match="did not finish within 6 s"):
            await render
    assert len(seen) >= 2, "expected Chromium and at least one helper process"
    await asyncio.to_thread(psutil.wait_procs, list(seen.values()), timeout=2)  # SIGKILL is asynchronous
    assert [p.pid for p in seen.values() if not _gone(p)] == []


async def test_timeout_kills_what_a_wrapper_script_started(tmp_path: Path) -> None:
    """Debian's /usr/bin/chromium is a shell script whose child is the browser: killing only the script's pid
    would orphan it. A wrapper of the same shape whose child ignores its parent's death shows the whole group
    goes."""
    wrapper = tmp_path / "chromium-wrapper"
    wrapper.write_text('#!/bin/sh\nsleep 30 &\necho "$!" > "$0.child"\nwait\n')
    wrapper.chmod(0o755)
    # Before the fix the orphan also held the pipes open, so the request hung until it exited (30 s).
    async with asyncio.timeout(10):
        with pytest.raises(RenderError, match="did not finish within 1 s"):
            await html_to_pdf("<p>x</p>", chromium=str(wrapper), timeout_s=1.0)
    child = psutil.Process(int(await asyncio.to_thread(Path(f"{wrapper}.child").read_text)))
    await asyncio.to_thread(psutil.wait_procs, [child], timeout=2)  # SIGKILL is asynchronous
    assert _gone(child)
