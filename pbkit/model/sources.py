"""Resolve what the user points pbkit at (a local model directory or a hub id) to a set of files.

A path that exists is a local source. Anything else shaped like `org/name` is a Hugging Face hub
id, resolved through `huggingface_hub.snapshot_download` (which honours HF_HUB_OFFLINE and the
cache), and recorded with the commit hash it resolved to so the recipe pins an exact revision.

No file of a model may live outside its directory: a symlink or a shard-index entry that escapes
is an error. The one exception is the HF cache layout, where `snapshots/<rev>/<file>` is a relative
symlink into the same repo's `blobs/`; exactly that is allowed.
"""

from __future__ import annotations

import json
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from pbkit.errors import PbkitError

# Directories that belong to tooling, not to the model (git metadata, huggingface_hub's
# local_dir bookkeeping under .cache/huggingface).
SKIP_DIRS = frozenset({".git", ".cache"})

# huggingface_hub's repo id rule: optional namespace, then a name of [\w.-], no "--" or "..".
_HUB_ID = re.compile(r"^(?:[\w][\w.-]{0,95}/)?[\w][\w.-]{0,95}$")
_TRUE = {"1", "on", "yes", "true"}


class SourceError(PbkitError):
    """A model source cannot be resolved or would read outside its directory."""


@dataclass(frozen=True)
class ResolvedSource:
    root: Path  # directory holding the files (an HF snapshot dir for hub ids)
    files: tuple[str, ...]  # relative POSIX paths, sorted; regular files only
    origin: dict[str, Any] = field(default_factory=dict)


def hf_snapshot_blobs(root: Path) -> Path | None:
    """The repo's `blobs/` dir if `root` is `.../models--org--name/snapshots/<rev>`, else None."""
    root = Path(os.path.abspath(root))
    if root.parent.name == "snapshots" and root.parent.parent.name.split("--", 1)[0] in {
        "models",
        "datasets",
        "spaces",
    }:
        blobs = root.parent.parent / "blobs"
        return blobs if blobs.is_dir() else None
    return None


def _within(path: Path, base: Path) -> bool:
    try:
        path.relative_to(base)
        return True
    except ValueError:
        return False


def _check_lexical(rel: str, where: str) -> PurePosixPath:
    if not rel or "\0" in rel:
        raise SourceError(f"{where}: empty or invalid path {rel!r}")
    p = PurePosixPath(rel)
    if p.is_absolute() or rel.startswith("\\") or re.match(r"^[A-Za-z]:", rel):
        raise SourceError(f"{where}: {rel!r} is an absolute path and escapes the model directory")
    if ".." in p.parts:
        raise SourceError(f"{where}: {rel!r} contains '..' and escapes the model directory")
    return p


def safe_join(root: Path, rel: str) -> Path:
    """`root / rel`, refusing absolute paths, `..` and anything that resolves outside `root`.

    In an HF cache snapshot the resolved file may also lie in the same repo's `blobs/`.
    Returns the joined (unresolved) path so names stay those of the model directory.
    """
    root = Path(root)
    p = _check_lexical(rel, str(root))
    joined = root.joinpath(*p.parts)
    # Fast path (ingest calls this per file): with no ".." and no symlink among the components
    # below root, the path cannot leave root, so root itself need not be resolved.
    cur = root
    for part in p.parts:
        cur = cur / part
        try:
            if stat.S_ISLNK(os.lstat(cur).st_mode):
                break
        except (FileNotFoundError, NotADirectoryError):
            return joined  # nothing below exists yet (e.g. an output path), so no link either
    else:
        return joined
    real_root = root.resolve()
    real = joined.resolve()
    if _within(real, real_root):
        return joined
    blobs = hf_snapshot_blobs(root)
    if blobs is not None and real.parent == blobs.resolve():
        return joined
    raise SourceError(f"{joined}: escapes the model directory {root}")


def list_model_files(root: Path) -> tuple[str, ...]:
    """Relative POSIX paths of the regular files under `root`, sorted; refuses escaping symlinks."""
    root = Path(root)
    if not root.is_dir():
        raise SourceError(f"{root}: not a directory")
    real_root = root.resolve()
    blobs = hf_snapshot_blobs(root)
    real_blobs = blobs.resolve() if blobs is not None else None
    out: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
        base = Path(dirpath)
        for d in dirnames:
            if (base / d).is_symlink():
                # Following directory links invites loops and escapes; models never need them.
                raise SourceError(f"{base / d}: symlinked directories are not supported in a model directory")
        for name in filenames:
            full = base / name
            rel = full.relative_to(root).as_posix()
            if full.is_symlink():
                real = full.resolve()
                allowed = _within(real, real_root) or (real_blobs is not None and real.parent == real_blobs)
                if not allowed:
                    raise SourceError(f"{full}: escapes the model directory (symlink to {real})")
                if not real.exists():
                    raise SourceError(f"{full}: dangling symlink (target {real} is missing)")
            try:
                st = full.stat()
            except OSError as exc:
                raise SourceError(f"{full}: cannot stat ({exc.strerror})") from exc
            if stat.S_ISREG(st.st_mode):
                out.append(rel)
    return tuple(sorted(out))


def check_index_paths(root: Path, index_file: str, require_exists: bool = True) -> tuple[str, ...]:
    """Validate a shard index (`*.safetensors.index.json`) and return its shards relative to root.

    Shard names in `weight_map` are relative to the index file's directory; each must stay
    inside the model directory (no absolute paths, no `..`, no escaping symlinks).
    """
    root = Path(root)
    index_rel = _check_lexical(index_file, str(root))
    index_path = safe_join(root, index_file)
    try:
        data = json.loads(index_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise SourceError(f"{index_path}: not a readable JSON shard index ({exc})") from None
    weight_map = data.get("weight_map") if isinstance(data, dict) else None
    if not isinstance(weight_map, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in weight_map.items()
    ):
        raise SourceError(f"{index_path}: 'weight_map' is missing or not a map of tensor names to file names")
    parent = index_rel.parent
    shards: set[str] = set()
    for tensor, shard in weight_map.items():
        try:
            _check_lexical(shard, str(index_path))
            rel = (parent / shard).as_posix()
            path = safe_join(root, rel)
        except SourceError:
            raise SourceError(
                f"{index_path}: weight_map entry {tensor!r} -> {shard!r} escapes the model directory"
            ) from None
        if require_exists and not path.is_file():
            raise SourceError(f"{index_path}: shard {shard!r} named in weight_map is missing")
        shards.add(rel)
    return tuple(sorted(shards))


def _offline() -> bool:
    # Read the environment at call time: huggingface_hub reads HF_HUB_OFFLINE once, at import.
    env = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    if env.strip().lower() in _TRUE:
        return True
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def resolve_source(
    spec: str | os.PathLike[str],
    revision: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> ResolvedSource:
    """A local model directory, or a hub id (optionally at `revision`) from the HF cache/hub."""
    path = Path(spec).expanduser()
    if path.exists():
        if revision is not None:
            raise SourceError(f"{spec}: --revision applies to hub ids, not to a local directory")
        if not path.is_dir():
            raise SourceError(f"{spec}: not a model directory")
        root = Path(os.path.abspath(path))
        return ResolvedSource(root, list_model_files(root), {"type": "local", "path": str(root)})

    spec_s = str(spec)
    if not _HUB_ID.match(spec_s) or "--" in spec_s or ".." in spec_s:
        raise SourceError(f"{spec_s}: no such directory, and not a hub id of the form org/name")

    from huggingface_hub import errors as hf_errors
    from huggingface_hub import snapshot_download

    offline = _offline()
    try:
        snap = snapshot_download(
            spec_s,
            revision=revision,
            cache_dir=os.fspath(cache_dir) if cache_dir is not None else None,
            local_files_only=offline,
        )
    except hf_errors.RevisionNotFoundError:
        raise SourceError(f"{spec_s}: revision {revision!r} not found on the hub") from None
    except hf_errors.RepositoryNotFoundError:
        raise SourceError(f"{spec_s}: repository not found on the hub (or access denied)") from None
    except hf_errors.IncompleteSnapshotError:
        raise SourceError(
            f"{spec_s}: the cached snapshot at revision {revision or 'main'} is incomplete and the hub cannot be reached"
        ) from None
    except hf_errors.LocalEntryNotFoundError:
        how = "HF_HUB_OFFLINE is set" if offline else "the hub cannot be reached"
        raise SourceError(
            f"{spec_s}: not a local directory, and no cached snapshot for revision {revision or 'main'} and {how}"
        ) from None
    except hf_errors.HFValidationError as exc:
        raise SourceError(f"{spec_s}: invalid hub id or revision ({exc})") from None
    except (hf_errors.HfHubHTTPError, OSError) as exc:
        raise SourceError(f"{spec_s}: download failed ({type(exc).__name__}: {exc})") from None

    root = Path(snap)
    commit = root.name  # snapshot folders are named by the resolved commit hash
    from huggingface_hub import constants

    origin = {
        "type": "hub",
        "repo_id": spec_s,
        "revision": commit,
        "requested_revision": revision or "main",
        "cache_dir": str(Path(cache_dir).resolve()) if cache_dir is not None else constants.HF_HUB_CACHE,
    }
    return ResolvedSource(root, list_model_files(root), origin)
