"""Checkpoint file of the streaming state: written periodically, read at start, then caught up from InfluxDB.

One `.npz` file per analytics worker under `settings.var_dir`, replaced atomically (write to a
temporary file, then rename), so a crash mid-write leaves the previous checkpoint intact.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from analytics.state import StreamState

CHECKPOINT_VERSION = 1


def checkpoint_path(var_dir: Path, client_id: str) -> Path:
    """Where worker `client_id` keeps its checkpoint."""
    return var_dir / f"analytics-{client_id}.npz"


def write_checkpoint(path: Path, arrays: dict[str, np.ndarray], saved_at_ms: int) -> None:
    """Write `StreamState.export_arrays()` atomically (blocking: call it from a worker thread).

    Args:
        path: target file.
        arrays: the state's arrays.
        saved_at_ms: time of the newest data the arrays hold (catch-up starts there).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    meta = np.array([CHECKPOINT_VERSION, saved_at_ms], dtype=np.int64)
    with tmp.open("wb") as f:
        np.savez(f, meta=meta, **arrays)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)


def read_checkpoint(path: Path, state: StreamState) -> int | None:
    """Restore `state` from `path`; the checkpoint's time, or None if there is none or it does not fit.

    Raises:
        ValueError: the file exists but is not a checkpoint of this registry (the message says why).
    """
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except (OSError, ValueError, EOFError) as exc:
        raise ValueError(f"{path}: not a readable checkpoint: {exc}") from None
    meta = arrays.pop("meta", None)
    if meta is None or int(meta[0]) != CHECKPOINT_VERSION:
        raise ValueError(f"{path}: checkpoint version {None if meta is None else int(meta[0])} is not "
                         f"{CHECKPOINT_VERSION}")
    try:
        state.import_arrays(arrays)
    except (KeyError, ValueError) as exc:
        raise ValueError(f"{path}: {exc}") from None
    return int(meta[1])
