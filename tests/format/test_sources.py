"""Sources: local directories, hub ids through a real HF cache layout offline, and escapes."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest

from pbkit.errors import PbkitError
from pbkit.model.sources import (
    SourceError,
    check_index_paths,
    hf_snapshot_blobs,
    list_model_files,
    resolve_source,
    safe_join,
)

REPO_ID = "sentence-transformers/all-MiniLM-L6-v2"
COMMIT = "c9745ed1d9f207416be6d2e6f8de32d1f16199bf"  # any 40-hex commit; snapshot dirs are named by it


def _files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def build_hf_cache(cache: Path, repo_id: str, src: Path, commit: str) -> Path:
    """Lay files out exactly as huggingface_hub's file cache does.

    models--org--name/blobs/<etag> holds the bytes (etag: sha256 for LFS files, the git blob
    sha1 otherwise); snapshots/<commit>/<path> are *relative* symlinks into ../../blobs/<etag>;
    refs/main holds the commit hash (no newline).
    """
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    (repo / "blobs").mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    snap = repo / "snapshots" / commit
    for rel in _files(src):
        data = (src / rel).read_bytes()
        if rel.endswith(".safetensors"):
            etag = hashlib.sha256(data).hexdigest()
        else:
            etag = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
        blob = repo / "blobs" / etag
        if not blob.exists():
            shutil.copyfile(src / rel, blob)
        link = snap / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    return snap


@pytest.fixture(scope="module")
def hf_cache(tmp_path_factory, bundled_dir):
    cache = tmp_path_factory.mktemp("hf-cache")
    snap = build_hf_cache(cache, REPO_ID, bundled_dir, COMMIT)
    return cache, snap


@pytest.fixture
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def test_local_directory(bundled_dir):
    src = resolve_source(bundled_dir)
    assert src.root == bundled_dir
    assert list(src.files) == _files(bundled_dir)
    assert "model.safetensors" in src.files and "1_Pooling/config.json" in src.files
    assert src.origin == {"type": "local", "path": str(bundled_dir)}


def test_hub_id_from_real_cache_layout_offline(hf_cache, offline, bundled_dir):
    cache, snap = hf_cache
    assert (snap / "model.safetensors").is_symlink()
    assert os.readlink(snap / "1_Pooling" / "config.json").startswith("../../../blobs/")
    src = resolve_source(REPO_ID, cache_dir=cache)
    assert src.root == snap
    assert list(src.files) == _files(bundled_dir)
    assert src.origin["type"] == "hub" and src.origin["repo_id"] == REPO_ID
    assert src.origin["revision"] == COMMIT  # "main" resolved to the pinned commit
    for rel in src.files:
        assert safe_join(src.root, rel).read_bytes() == (bundled_dir / rel).read_bytes()
    # an explicit commit hash resolves to the same snapshot
    assert resolve_source(REPO_ID, revision=COMMIT, cache_dir=cache).root == snap
    # and the snapshot directory itself, given as a local path, is allowed its blobs/ links
    assert hf_snapshot_blobs(snap) == cache / "models--sentence-transformers--all-MiniLM-L6-v2" / "blobs"
    assert resolve_source(snap).files == src.files


def test_hub_id_not_cached_offline_is_clear(hf_cache, offline):
    cache, _ = hf_cache
    with pytest.raises(SourceError) as info:
        resolve_source("nobody/not-cached-model", cache_dir=cache)
    msg = str(info.value)
    assert (
        msg.startswith("nobody/not-cached-model: not a local directory, and no cached snapshot")
        and "HF_HUB_OFFLINE" in msg
    )
    assert "\n" not in msg
    with pytest.raises(SourceError, match="revision v9"):
        resolve_source(REPO_ID, revision="v9", cache_dir=cache)


def test_not_a_path_nor_hub_id(tmp_path):
    with pytest.raises(SourceError, match="no such directory"):
        resolve_source(str(tmp_path / "missing" / "dir" / "x"))
    with pytest.raises(SourceError, match="not a model directory"):
        f = tmp_path / "file.txt"
        f.write_text("x")
        resolve_source(f)


def test_symlink_escaping_model_dir(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    secret = tmp_path / "secret.txt"
    secret.write_text("not part of the model")
    (model / "tokenizer.json").symlink_to(secret)
    with pytest.raises(SourceError) as info:
        resolve_source(model)
    assert str(info.value).startswith(f"{model / 'tokenizer.json'}: escapes the model directory")
    assert isinstance(info.value, PbkitError)


def test_internal_symlink_allowed_and_tooling_dirs_skipped(tmp_path):
    model = tmp_path / "model"
    (model / "sub").mkdir(parents=True)
    (model / "sub" / "a.bin").write_bytes(b"a")
    (model / "b.bin").symlink_to("sub/a.bin")
    (model / ".git").mkdir()
    (model / ".git" / "HEAD").write_text("ref")
    (model / ".cache" / "huggingface").mkdir(parents=True)
    (model / ".cache" / "huggingface" / "x.metadata").write_text("m")
    assert list_model_files(model) == ("b.bin", "sub/a.bin")


def test_snapshot_link_into_another_repo_is_an_escape(hf_cache, tmp_path):
    cache, snap = hf_cache
    other = tmp_path / "models--x--y" / "snapshots" / COMMIT
    other.mkdir(parents=True)
    (other.parent.parent / "blobs").mkdir()
    (other / "config.json").symlink_to(os.path.relpath(snap / "config.json", other))  # into another repo's blobs
    with pytest.raises(SourceError, match="escapes the model directory"):
        resolve_source(other)


@pytest.mark.parametrize("rel", ["../x", "/etc/passwd", "a/../../b", "a/../b", "", "C:/x"])
def test_safe_join_refuses(tmp_path, rel):
    with pytest.raises(SourceError):
        safe_join(tmp_path, rel)


def test_safe_join_through_symlinked_dir(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    (root / "out").symlink_to(tmp_path)
    with pytest.raises(SourceError, match="escapes the model directory"):
        safe_join(root, "out/x.safetensors")
    assert safe_join(root, "sub/x.safetensors") == root / "sub" / "x.safetensors"


def _index(root: Path, weight_map: dict, name="model.safetensors.index.json") -> str:
    (root / name).parent.mkdir(parents=True, exist_ok=True)
    (root / name).write_text(json.dumps({"metadata": {"total_size": 8}, "weight_map": weight_map}))
    return name


def test_index_weight_map_paths(tmp_path):
    root = tmp_path / "m"
    root.mkdir()
    for s in ("model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"):
        (root / s).write_bytes(b"")
    idx = _index(
        root,
        {
            "a": "model-00001-of-00002.safetensors",
            "b": "model-00002-of-00002.safetensors",
            "c": "model-00001-of-00002.safetensors",
        },
    )
    assert check_index_paths(root, idx) == ("model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors")
    # shard names are relative to the index's own directory
    (root / "text_encoder").mkdir()
    (root / "text_encoder" / "model.safetensors").write_bytes(b"")
    sub = _index(root, {"w": "model.safetensors"}, "text_encoder/model.safetensors.index.json")
    assert check_index_paths(root, sub) == ("text_encoder/model.safetensors",)


@pytest.mark.parametrize("bad", ["../outside.safetensors", "/tmp/x.safetensors", "sub/../../x.safetensors"])
def test_index_weight_map_escape(tmp_path, bad):
    root = tmp_path / "m"
    root.mkdir()
    idx = _index(root, {"lm_head.weight": bad})
    with pytest.raises(SourceError) as info:
        check_index_paths(root, idx)
    msg = str(info.value)
    assert msg.startswith(str(root / idx)) and "escapes the model directory" in msg and bad in msg


def test_index_missing_shard_and_malformed(tmp_path):
    root = tmp_path / "m"
    root.mkdir()
    idx = _index(root, {"a": "model-00001-of-00002.safetensors"})
    with pytest.raises(SourceError, match="missing"):
        check_index_paths(root, idx)
    assert check_index_paths(root, idx, require_exists=False) == ("model-00001-of-00002.safetensors",)
    (root / idx).write_text('{"weight_map": [1]}')
    with pytest.raises(SourceError, match="weight_map"):
        check_index_paths(root, idx)
    (root / idx).write_text("{not json")
    with pytest.raises(SourceError, match="not a readable JSON shard index"):
        check_index_paths(root, idx)
