"""Every file genkit writes into a run or bench folder, and every file it reads back from one.

Writes never go through a symbolic link planted where genkit writes (a ``.lock`` or
``metrics.jsonl`` pointing at another file would otherwise truncate or grow that file), and a
file is replaced whole or not at all: written to a temporary file beside it, then renamed over
it. Reads turn a damaged file into one GenkitError line; a damaged cache reads as missing, so it
is computed again and replaced.
"""

from __future__ import annotations

import errno
import json
import math
import os
import secrets
import stat
import zipfile
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterator

import numpy as np

from genkit.errors import GenkitError

NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)  # 0 on Windows, which has no symlinks an unprivileged user can plant
MISSING = object()


# ----------------------------------------------------------------------------- writing


def refuse_link(path: Path) -> None:
    """One line when ``path`` is a symbolic link: genkit never writes through one."""
    if Path(path).is_symlink():
        raise GenkitError(f"{path} is a symbolic link; genkit does not write through links (remove it or pick another folder)")


def check_writable(path: Path) -> None:
    """Before long work: ``path`` is missing or a regular file (not a link, folder, pipe...), in
    a folder that can be written, so the write at the end cannot fail for these reasons."""
    path = Path(path)
    refuse_link(path)
    if path.exists() and not path.is_file():
        raise GenkitError(f"{path} is not a regular file (a folder?), so genkit cannot write it; move it away")
    folder = path.parent
    if folder.exists() and not os.access(folder, os.W_OK | os.X_OK):
        raise GenkitError(f"cannot write in {folder}: permission denied")


def open_nofollow(path: Path, flags: int, mode: int = 0o666) -> int:
    """``os.open`` that refuses a symbolic link (and, for writing, anything but a lone regular
    file: a hard link would let the write reach another name's contents)."""
    try:
        handle = os.open(path, flags | NOFOLLOW, mode)
    except OSError as error:
        if error.errno == errno.ELOOP:  # O_NOFOLLOW met a link
            refuse_link(path)
        raise
    if flags & (os.O_WRONLY | os.O_RDWR):
        info = os.fstat(handle)
        if not stat.S_ISREG(info.st_mode) or info.st_nlink > 1:
            os.close(handle)
            raise GenkitError(f"{path} is not a regular file of its own (a hard link, device or pipe?); genkit will not write it")
    return handle


def create_new(path: Path, data: bytes = b"") -> bool:
    """Create ``path`` holding ``data`` if it does not exist (never opening an existing file or
    link); False when something is there already."""
    try:
        handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | NOFOLLOW, 0o666)
    except FileExistsError:
        return False
    with os.fdopen(handle, "wb") as file:
        file.write(data)
    return True


def write_atomic(path: Path, content: bytes | str | Callable[[BinaryIO], None], sync: bool = False) -> Path:
    """Replace ``path`` whole: ``content`` (bytes, text, or a function writing to a binary file)
    goes to a new temporary file ``.NAME.XXXXXXXX`` beside it, which is renamed over it. A crash
    leaves the old file or the new one, never half of one; the temporary file is created
    exclusively with the mode the umask gives any new file. ``sync``: fsync the file and the
    folder so the new file survives a power cut too (checkpoints)."""
    path = Path(path)
    refuse_link(path)  # the rename would replace the link, not its target; still, say so
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
        try:
            handle = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | NOFOLLOW, 0o666)
            break
        except FileExistsError:
            continue
    try:
        with os.fdopen(handle, "wb") as file:
            if callable(content):
                content(file)
            else:
                file.write(content.encode() if isinstance(content, str) else content)
            file.flush()
            if sync:
                os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    if sync:
        sync_folder(path.parent)  # the rename itself survives a power cut
    return path


def link_atomic(source: Path, path: Path) -> Path:
    """``path`` becomes another name of ``source`` (a hard link: no extra space), or a copy on file
    systems without hard links; replaced whole, as ``write_atomic`` does."""
    path = Path(path)
    refuse_link(path)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    try:
        try:
            os.link(source, temporary)  # fails, never follows, if the name is taken
        except OSError:  # file systems without hard links
            with open(source, "rb") as file:
                write_atomic(temporary, file.read())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return path


def sync_folder(folder: Path) -> None:
    try:
        handle = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms that cannot open folders
        return
    try:
        os.fsync(handle)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(handle)


def append_text(path: Path, text: str) -> None:
    """Add ``text`` at the end of ``path`` (created if missing), never through a link."""
    handle = open_nofollow(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    with os.fdopen(handle, "ab") as file:
        file.write(text.encode())


# ----------------------------------------------------------------------------- reading


def finite_or_null(value: Any) -> Any:
    """JSON has no NaN or infinity (a diverged loss, the score of non-finite samples): null instead."""
    if isinstance(value, dict):
        return {k: finite_or_null(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_null(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def json_text(value: Any, indent: int | None = None) -> str:
    """Strict JSON of ``value``, non-finite numbers written as null."""
    return json.dumps(finite_or_null(value), indent=indent, allow_nan=False)


def _damaged(path: Path, what: str, error: BaseException) -> GenkitError:
    detail = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return GenkitError(f"{path} is damaged ({what}: {detail}); move it away and run the command again")


def read_json(path: Path, default: Any = MISSING) -> Any:
    """The JSON value in ``path``; ``default`` when it is missing (else an error); damage is one line."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        if default is MISSING:
            raise GenkitError(f"{path} not found") from None
        return default
    except OSError as error:
        raise GenkitError(f"cannot read {path}: {error.strerror}") from None
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise _damaged(path, "not JSON", error) from None


def read_cached_json(path: Path) -> Any:
    """The JSON value of a cache file, or None when it is missing or damaged (computed again)."""
    try:
        return read_json(path, default=None)
    except GenkitError:
        return None


def read_jsonl(path: Path, drop_cut_tail: bool = False) -> Iterator[Any]:
    """The records of a JSON-lines file (none when it is missing); damage is one line.
    ``drop_cut_tail``: a last line without its newline that is not JSON is left out; it is what
    a kill in the middle of an append leaves."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return
    except OSError as error:
        raise GenkitError(f"cannot read {path}: {error.strerror}") from None
    lines = raw.split(b"\n")
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as error:
            if drop_cut_tail and number == len(lines):  # no newline after it: cut short
                return
            raise GenkitError(f"{path} is not JSON lines: line {number} is damaged ({str(error).splitlines()[0]})") from None
        yield record


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """Every array of an .npz file, without pickle (so no code runs); damage is one line."""
    path = Path(path)
    try:
        stored = np.load(path, allow_pickle=False)
        if not isinstance(stored, np.lib.npyio.NpzFile):  # a lone .npy array
            raise ValueError("an .npy array, not an .npz archive")
        with stored:
            return {name: stored[name] for name in stored.files}
    except FileNotFoundError:
        raise GenkitError(f"{path} not found") from None
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zipfile.LargeZipFile) as error:
        raise _damaged(path, "not a readable .npz file", error) from None


def read_cached_npz(path: Path) -> dict[str, np.ndarray] | None:
    """The arrays of a cache file, or None when it is missing or damaged (computed again)."""
    try:
        return read_npz(path)
    except GenkitError:
        return None
