"""An exclusive lock on a folder for as long as one process works in it.

It is an advisory ``flock`` on ``FOLDER/.lock``: the kernel drops it when the process ends, even
by kill -9, so a crashed run never blocks the next one. The file also names its holder (pid,
host, command) for the refusal message. Where ``fcntl`` does not exist (Windows) no lock is taken.
Re-entrant within a process: the bench and the tests open the same run folder more than once.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from pathlib import Path

from genkit import files
from genkit.errors import GenkitError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

LOCK_FILE = ".lock"
_held: dict[str, list[int]] = {}  # resolved folder -> [file descriptor, depth]


def acquire(folder: Path | str) -> None:
    """Lock ``folder`` (created if needed) or raise a GenkitError naming the process that holds it."""
    folder = Path(folder)
    key = str(folder.resolve())
    if key in _held:
        _held[key][1] += 1
        return
    if fcntl is None:  # pragma: no cover
        return
    try:
        folder.mkdir(parents=True, exist_ok=True)
        # never through a link planted as .lock: the truncation below would empty its target
        handle = files.open_nofollow(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as error:
        raise GenkitError(f"cannot use {folder} as a run folder: {error.strerror}") from None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _read_holder(handle)
        os.close(handle)
        raise GenkitError(f"{folder} is in use by {holder}; wait for it to finish or stop it, or pick another folder") from None
    os.ftruncate(handle, 0)
    os.write(handle, json.dumps(_holder_record()).encode())
    _held[key] = [handle, 1]


def release(folder: Path | str) -> None:
    key = str(Path(folder).resolve())
    if key not in _held:
        return
    _held[key][1] -= 1
    if _held[key][1] == 0:
        handle, _ = _held.pop(key)
        os.close(handle)  # closing the descriptor drops the flock


def _holder_record() -> dict:
    command = " ".join(os.path.basename(a) if i == 0 else a for i, a in enumerate(sys.argv))
    return {"pid": os.getpid(), "host": socket.gethostname(), "command": command, "since": time.strftime("%Y-%m-%d %H:%M:%S")}


def _read_holder(handle: int) -> str:
    try:
        record = json.loads(os.pread(handle, 4096, 0).decode() or "{}")
        return f"process {record['pid']} on host {record['host']} ({record['command']}, since {record['since']})"
    except (ValueError, KeyError, OSError):
        return "another process"
