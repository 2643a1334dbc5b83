"""The content-addressed object directory: `objects/<first 2 hex>/<id>`, raw bytes, no header.

Objects are written atomically: bytes go to a temporary file under `tmp/` (same file system),
are fsynced, then hard-linked into place (link fails if the object already exists, so an
existing object is never rewritten) and the temporary name is dropped; the object's directory
is fsynced once per batch. A crash leaves at most stray files in `tmp/`, which `verify` ignores
and `gc` removes. Bytes are copied from the source file with `os.copy_file_range` (in-kernel,
no trip through Python memory) when the source is a file region.
"""

from __future__ import annotations

import errno
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from pbkit.errors import PbkitError

_ID_RE = re.compile(r"^[0-9a-f]{64}$")
TMP_PREFIX = ".obj-"


class ObjectIdError(PbkitError, ValueError):
    """A string used as an object id is not a 64-hex-digit id."""


def check_id(obj_id: str) -> str:
    if not _ID_RE.match(obj_id):
        raise ObjectIdError(f"{obj_id!r} is not a block id (64 lowercase hex digits)")
    return obj_id


def is_id(name: str) -> bool:
    return bool(_ID_RE.match(name))


@dataclass(frozen=True)
class FileRegion:
    """Bytes [offset, offset + length) of a file: the source of an object to write."""

    path: Path
    offset: int
    length: int


class ObjectDir:
    def __init__(self, root: Path, tmp: Path) -> None:
        self.root = root
        self.tmp = tmp

    def ensure(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.tmp.mkdir(parents=True, exist_ok=True)

    def path(self, obj_id: str) -> Path:
        check_id(obj_id)
        return self.root / obj_id[:2] / obj_id

    def exists(self, obj_id: str) -> bool:
        return os.path.exists(self.path(obj_id))

    def size(self, obj_id: str) -> int | None:
        try:
            return os.stat(self.path(obj_id)).st_size
        except FileNotFoundError:
            return None

    def read(self, obj_id: str) -> bytes:
        with open(self.path(obj_id), "rb") as f:
            return f.read()

    def iter_ids(self) -> Iterator[str]:
        """Ids of every object on disk (files whose names are not ids are skipped)."""
        if not self.root.is_dir():
            return
        for sub in sorted(os.scandir(self.root), key=lambda e: e.name):
            if not sub.is_dir() or len(sub.name) != 2:
                continue
            for entry in os.scandir(sub.path):
                if is_id(entry.name) and entry.name.startswith(sub.name):
                    yield entry.name

    def iter_temp(self) -> Iterator[Path]:
        if self.tmp.is_dir():
            for entry in os.scandir(self.tmp):
                yield Path(entry.path)

    # ------------------------------------------------------------------ writing
    def write_many(self, items: list[tuple[str, bytes | FileRegion]], on_written=None) -> tuple[int, int]:
        """Write objects that are not yet present; returns (objects written, bytes written).

        Each object is fsynced before it is linked into place; every touched directory is
        fsynced at the end, so after return all objects are durable. `on_written(id, nbytes)`
        is called after each object is in place.
        """
        written = 0
        nbytes = 0
        dirs: set[Path] = set()
        src_fds: dict[Path, int] = {}
        try:
            for obj_id, src in items:
                final = self.path(obj_id)
                if os.path.exists(final):
                    continue
                final.parent.mkdir(exist_ok=True)
                n = self._write_one(final, src, src_fds)
                if n is not None:
                    written += 1
                    nbytes += n
                    dirs.add(final.parent)
                    if on_written is not None:
                        on_written(obj_id, n)
        finally:
            for fd in src_fds.values():
                os.close(fd)
        for d in sorted(dirs):
            _fsync_dir(d)
        return written, nbytes

    def _write_one(self, final: Path, src: bytes | FileRegion, src_fds: dict[Path, int]) -> int | None:
        fd, tmp_name = tempfile.mkstemp(prefix=TMP_PREFIX, dir=self.tmp)
        try:
            if isinstance(src, FileRegion):
                in_fd = src_fds.get(src.path)
                if in_fd is None:
                    in_fd = src_fds[src.path] = os.open(src.path, os.O_RDONLY)
                _copy_region(in_fd, src.offset, src.length, fd)
                n = src.length
            else:
                _write_all(fd, memoryview(src))
                n = len(src)
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            try:
                os.link(tmp_name, final)  # fails with EEXIST: an object is never rewritten
            except FileExistsError:
                return None  # another process wrote the same content first
            except OSError as exc:
                if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP):
                    raise
                if os.path.exists(final):
                    return None
                os.replace(tmp_name, final)  # file systems without hard links
                return n
        finally:
            if os.path.exists(tmp_name):
                os.unlink(tmp_name)
        return n

    def remove(self, obj_id: str) -> int:
        p = self.path(obj_id)
        try:
            n = p.stat().st_size
            p.unlink()
        except FileNotFoundError:
            return 0
        return n


def _write_all(fd: int, mv: memoryview) -> None:
    while mv:
        n = os.write(fd, mv)
        mv = mv[n:]


def _copy_region(in_fd: int, offset: int, length: int, out_fd: int) -> None:
    done = 0
    if hasattr(os, "copy_file_range"):
        try:
            while done < length:
                n = os.copy_file_range(in_fd, out_fd, length - done, offset + done)
                if n == 0:
                    break
                done += n
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.ENOTSUP):
                raise
    while done < length:  # fallback (other OS, cross-device on older kernels) or short copy
        chunk = os.pread(in_fd, min(length - done, 16 << 20), offset + done)
        if not chunk:
            raise PbkitError(f"source file shrank while copying (wanted {length} bytes at offset {offset})")
        _write_all(out_fd, memoryview(chunk))
        done += len(chunk)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


fsync_dir = _fsync_dir
