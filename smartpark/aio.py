"""Asyncio helpers shared by the services."""

from __future__ import annotations

import asyncio


def raise_if_cancelling() -> None:
    """Re-raise a cancellation that a library swallowed.

    Python 3.11's `asyncio.wait_for` drops a cancellation that races with its inner future completing
    (fixed in 3.12); aiomqtt's `publish` waits with it. A service loop that carries on after such a
    publish would never see its cancellation again, and its task group would wait forever at shutdown.
    Call this after such awaits in long-running loops — but not in a task that ran a task group which
    failed: on Python 3.11 that leaves the task's cancellation count raised although nothing cancelled it.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
