"""Atomic writes: a file or a directory appears whole under its final name, or not at all.

The one place write-then-rename is written. Everything made here gets the permissions an
ordinary `open()`/`mkdir()` would give under the process umask (0644 files and 0755
directories under umask 022): `mkstemp`/`mkdtemp` create private (0600/0700) entries, which
would otherwise leak into the renamed result.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Any, Iterator


def current_umask() -> int:
    """The process umask, read without changing it where the kernel says it (Linux >= 4.7)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # elsewhere: set and restore (a brief window other threads could see)
    os.umask(mask)
    return mask


def file_mode() -> int:
    """Mode of a new regular file under the current umask (0644 under 022)."""
    return 0o666 & ~current_umask()


def dir_mode() -> int:
    """Mode of a new directory under the current umask (0755 under 022)."""
    return 0o777 & ~current_umask()


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Make a rename or new entry in directory `path` durable (no-op where directories cannot be
    opened). Raises OSError if the fsync itself fails."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes, *, durable: bool = True) -> Path:
    """Write `data` to `path` through a temporary sibling file and a rename: readers see the old or
    the new file, never a partial one. Parent directories are created.

    Raises:
        OSError: the file cannot be written; the error names `path`, not the temporary file.
    """
    path = Path(path)
    make_parent(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise _naming(exc, path) from None
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            if durable:
                os.fsync(fh.fileno())
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise _naming(exc, path) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if durable:
        fsync_dir(path.parent)
    return path


def atomic_write_text(path: str | os.PathLike[str], text: str, *, durable: bool = True) -> Path:
    """`atomic_write_bytes` of UTF-8 text. Raises OSError naming `path`."""
    return atomic_write_bytes(path, text.encode("utf-8"), durable=durable)


def atomic_write_json(
    path: str | os.PathLike[str], data: Any, *, indent: int | None = 1, sort_keys: bool = False, durable: bool = True
) -> Path:
    """`atomic_write_bytes` of `data` as JSON with a final newline. Raises OSError naming `path`,
    TypeError if `data` is not JSON-serialisable (before anything is written)."""
    text = json.dumps(data, indent=indent, sort_keys=sort_keys) + "\n"
    return atomic_write_bytes(path, text.encode("utf-8"), durable=durable)


def make_temp_dir(out_dir: str | os.PathLike[str], prefix: str | None = None) -> Path:
    """A new empty directory beside `out_dir` (same file system, so it can be renamed onto it),
    with the umask's directory mode. Raises OSError naming `out_dir`."""
    out_dir = Path(out_dir)
    make_parent(out_dir)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=prefix or f".{out_dir.name}.tmp-", dir=out_dir.parent))
        tmp.chmod(dir_mode())
    except OSError as exc:
        raise _naming(exc, out_dir) from None
    return tmp


def replace_dir(tmp: str | os.PathLike[str], out_dir: str | os.PathLike[str], *, overwrite: bool = False) -> None:
    """Rename the finished directory `tmp` to `out_dir`. An empty `out_dir` is replaced; a
    non-empty one only with `overwrite` (removed first, so there is a moment with neither).

    Raises:
        OSError: `out_dir` is not empty (and not `overwrite`) or the rename fails; names `out_dir`.
    """
    tmp, out_dir = Path(tmp), Path(out_dir)
    try:
        if out_dir.is_dir() and not out_dir.is_symlink():
            if overwrite:
                shutil.rmtree(out_dir)
            else:
                out_dir.rmdir()  # only if empty; rename() onto a directory needs it gone on some systems
        os.rename(tmp, out_dir)
    except OSError as exc:
        raise _naming(exc, out_dir) from None


@contextlib.contextmanager
def atomic_dir(
    out_dir: str | os.PathLike[str], *, overwrite: bool = False, prefix: str | None = None, durable: bool = False
) -> Iterator[Path]:
    """Fill the yielded temporary directory; on success it is renamed to `out_dir` (see
    `replace_dir`), on any exception it is removed and `out_dir` is left as it was.

    Raises:
        OSError: naming `out_dir`, when the temporary directory cannot be made or put in place.
    """
    out_dir = Path(out_dir)
    tmp = make_temp_dir(out_dir, prefix)
    try:
        yield tmp
        ordinary_modes(tmp)
        if durable:
            fsync_dir(tmp)
        replace_dir(tmp, out_dir, overwrite=overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if durable:
        fsync_dir(out_dir.parent)


def ordinary_modes(root: str | os.PathLike[str]) -> None:
    """Give every file and directory below `root` the mode an ordinary `open()`/`mkdir()` would
    under the umask (0644 / 0755 under 022; execute bits kept where set). Writers that go through
    a private temporary file and a rename (safetensors' `save_file`, and so transformers'
    `save_pretrained`) leave 0600 files, which a directory made here must not pass on.
    Raises OSError if a mode cannot be changed."""
    umask = current_umask()
    for dirpath, _dirnames, filenames in os.walk(root):
        os.chmod(dirpath, 0o777 & ~umask)
        for name in filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            if stat.S_ISREG(st.st_mode):
                execute = 0o111 if st.st_mode & 0o100 else 0
                os.chmod(path, (0o666 | execute) & ~umask)


def make_parent(path: str | os.PathLike[str]) -> None:
    """Create the parent directories of `path`.

    Raises:
        NotADirectoryError: an existing ancestor is a file (names that ancestor; plain `mkdir`
            would say "File exists" about the path).
        OSError: the directories cannot be created (names the parent).
    """
    parent = Path(path).parent
    for ancestor in [parent, *parent.parents]:
        if ancestor.exists():
            if not ancestor.is_dir():
                raise NotADirectoryError(errno.ENOTDIR, "is a file, not a directory", str(ancestor))
            break
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _naming(exc, parent) from None


def _naming(exc: OSError, path: Path) -> OSError:
    """The same error (OSError picks the subclass from errno), naming the path the caller asked
    for rather than a temporary name."""
    return OSError(exc.errno, exc.strerror or str(exc), str(path))


__all__ = [
    "atomic_dir",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "current_umask",
    "dir_mode",
    "file_mode",
    "fsync_dir",
    "make_parent",
    "make_temp_dir",
    "replace_dir",
]
