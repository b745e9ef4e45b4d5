"""Writing a file atomically: the data goes to a temporary file in the same folder, is flushed and fsynced, and
replaces the target with ``os.replace``; the folder is fsynced after. A reader sees the old file or the complete
new one, never a part; a failed write leaves the old file as it was and no temporary file behind.

The new file gets the permissions an ordinary ``open(path, "w")`` would give it (0666 less the process umask),
not the 0600 of ``tempfile.mkstemp``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import BinaryIO, Iterator


def current_umask() -> int:
    """The process umask (read by setting it and putting it back: there is no other portable way)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def fsync_dir(path: Path) -> None:
    """Make a rename inside ``path`` durable (where the system allows a folder to be fsynced)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class WriteError(OSError):
    """A file could not be written: the message names the file and the reason (the errno is kept)."""

    def __str__(self) -> str:
        return self.strerror or super().__str__()


def _naming(exc: OSError, path: Path) -> OSError:
    """The error with the target file in its message (``[Errno 28] No space left on device`` names nothing)."""
    if isinstance(exc, WriteError):
        return exc
    return WriteError(exc.errno, f"{path}: cannot write: {exc.strerror or exc}")


@contextlib.contextmanager
def atomic_file(path: str | Path) -> Iterator[BinaryIO]:
    """``with atomic_file(path) as f: f.write(...)``: ``path`` is replaced when the block ends without an error;
    on an error the temporary file is removed and ``path`` is untouched. An OSError names ``path``."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise _naming(exc, path) from exc
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise _naming(exc, path) from exc
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_file(path) as f:
        f.write(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, data) -> None:
    atomic_write_text(path, json.dumps(data, ensure_ascii=False, indent=2) + "\n")


def replace_folder(staging: str | Path, target: str | Path) -> None:
    """Put a completely written folder ``staging`` in the place of ``target`` (same parent folder): the old
    ``target``, if any, is moved aside first and removed after, so that at every moment ``target`` is either the
    old folder or the new one (a crash between the two renames leaves the old one under ``.NAME.old``)."""
    staging, target = Path(staging), Path(target)
    old = target.with_name(f".{target.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        os.replace(target, old)
    os.replace(staging, target)
    fsync_dir(target.parent)
    shutil.rmtree(old, ignore_errors=True)
