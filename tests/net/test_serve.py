"""`pbkit serve`: the documented endpoints, Range/ETag/HEAD, JSON errors, and a path fuzz that
never gets a 5xx; the edge: hits and misses, a warm edge fetching only what it lacks, eviction
within capacity."""

from __future__ import annotations

import json
import socket
from urllib.parse import urlsplit

import httpx
import numpy as np
import pytest
from net_helpers import Served, run_cli, sha256_tree

from pbkit.net.eviction import LFU, LRU, make_policy
from pbkit.store import Store


def _blocks(store_dir, name):
    with Store.open(store_dir, create=False) as s:
        return s.recipe(name).blocks()


def test_endpoints(origin, origin_store):
    with httpx.Client(base_url=origin.url, timeout=10) as c:
        assert c.get("/v1/health").json() == {"status": "ok", "role": "origin"}
        models = {m["name"]: m for m in c.get("/v1/models").json()["models"]}
        assert set(models) == {"base", "ft", "ft2", "lora"} and models["lora"]["base"] == "base"
        r = c.get("/v1/models/ft/recipe")
        assert r.status_code == 200 and r.headers["etag"] == f'"{models["ft"]["recipe_id"]}"'
        assert json.loads(r.content)["name"] == "ft"
        info = max(_blocks(origin_store, "base").values(), key=lambda b: b.nbytes)
        with Store.open(origin_store, create=False) as s:
            data = s.objects.read(info.id)
        r = c.get(f"/v1/blocks/{info.id}")
        assert r.content == data and r.headers["etag"] == f'"{info.id}"'
        assert r.headers["x-pbkit-kind"] == "tensor" and r.headers["x-pbkit-shape"] == ",".join(map(str, info.shape))
        h = c.head(f"/v1/blocks/{info.id}")
        assert h.status_code == 200 and h.content == b"" and int(h.headers["content-length"]) == len(data)
        r = c.get(f"/v1/blocks/{info.id}", headers={"Range": "bytes=100-199"})
        assert r.status_code == 206 and r.content == data[100:200]
        r = c.get(f"/v1/blocks/{info.id}", headers={"If-None-Match": f'"{info.id}"'})
        assert r.status_code == 304
        for path, status in [
            ("/v1/blocks/" + "0" * 64, 404),
            ("/v1/blocks/xyz", 400),
            ("/v1/blocks/" + "A" * 64, 400),
            ("/v1/models/nope/recipe", 404),
            ("/v2/anything", 404),
        ]:
            r = c.get(path)
            assert r.status_code == status and "error" in r.json(), path
        assert c.post("/v1/models").status_code == 405


def test_serve_refuses_a_missing_store(tmp_path, capsys):
    code, _, err = run_cli(capsys, "--store", tmp_path / "none", "serve", "--port", "0")
    assert code == 2 and "not a pbkit store" in err


PIECES = [
    "/v1", "/v1/", "/v1/blocks", "/v1/blocks/", "/v1/models", "/v1/models/", "/recipe", "/v1/health", "/v1/stats",
    "..", "../..", "%2e%2e", "%2F", "%00", "//", "/./", "objects", "index.sqlite", "pbkit-store.json", "~", "%",
    "%zz", "?x=1", "#", ";", "\u00e9", "%C3%A9", "0" * 64, "f" * 63, "a" * 65, "A" * 64, " ", "%20", "base", "lora",
]  # fmt: skip


def _raw_request(host: str, port: int, method: str, target: bytes) -> tuple[int, bytes]:
    """One request sent byte for byte (no client-side normalisation), on its own connection."""
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(method.encode() + b" " + target + b" HTTP/1.1\r\nHost: fuzz\r\nConnection: close\r\n\r\n")
        chunks = []
        while True:
            data = sock.recv(65536)
            if not data:
                break
            chunks.append(data)
    raw = b"".join(chunks)
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def test_path_fuzz_never_gets_a_5xx(origin, origin_store):
    """>= 1000 requests with random paths and methods, sent raw: no 5xx; every 4xx of a well-formed
    request is a JSON error (h11 itself answers a malformed request line, in plain text); the
    server still answers afterwards."""
    rng = np.random.default_rng(17)
    real = list(_blocks(origin_store, "base"))[:3]
    parts = PIECES + real + [f"/v1/blocks/{b}" for b in real]
    url = urlsplit(origin.url)
    statuses: dict[int, int] = {}
    for _ in range(1200):
        k = int(rng.integers(1, 5))
        path = "".join(parts[int(j)] for j in rng.integers(0, len(parts), size=k))
        path = "/" + path.lstrip("/") if rng.random() < 0.9 else path or "/"
        target = path.encode("utf-8")
        method = ["GET", "HEAD", "POST", "DELETE", "PUT"][int(rng.integers(0, 5))]
        status, body = _raw_request(url.hostname, url.port, method, target)
        statuses[status] = statuses.get(status, 0) + 1
        assert status < 500, (method, target, status, body[:200])
        well_formed = target.startswith(b"/") and all(33 <= c < 127 for c in target)
        if 400 <= status < 500 and method != "HEAD" and well_formed:
            assert "error" in json.loads(body), (method, target, body[:200])
    assert sum(statuses.values()) >= 1000 and len(statuses) >= 3, statuses
    assert httpx.get(f"{origin.url}/v1/health", timeout=10).json()["status"] == "ok"


def test_edge_warm_fetches_only_what_it_lacks(origin, origin_store, sources, tmp_path, capsys):
    with Served.edge(origin.url, "100MB", "lru") as edge:
        d1 = tmp_path / "d1"
        assert run_cli(capsys, "--store", d1, "pull", "ft", "--from", edge.url, "--out", tmp_path / "ft")[0] == 0
        assert sha256_tree(tmp_path / "ft") == sha256_tree(sources["ft"])
        s1 = edge.stats()
        assert s1["hits"] == 0 and s1["misses"] == s1["cached_blocks"]
        # a second device holding the base pulls the sibling fine-tune through the warm edge
        d2 = tmp_path / "d2"
        assert run_cli(capsys, "--store", d2, "pull", "base", "--from", origin.url)[0] == 0
        assert run_cli(capsys, "--store", d2, "pull", "ft2", "--from", edge.url, "--out", tmp_path / "ft2")[0] == 0
        assert sha256_tree(tmp_path / "ft2") == sha256_tree(sources["ft2"])
        s2 = edge.stats()
        ft_held = set(_blocks(origin_store, "ft")) | set(_blocks(origin_store, "base"))
        lacking = {b: i for b, i in _blocks(origin_store, "ft2").items() if b not in ft_held}
        assert lacking and s2["misses"] - s1["misses"] == len(lacking)
        assert s2["bytes_from_upstream"] - s1["bytes_from_upstream"] == sum(i.nbytes for i in lacking.values())
        with Store.open(d2, create=False) as s:
            assert s.verify().ok


@pytest.mark.parametrize("policy", ["lru", "lfu"])
def test_edge_keeps_within_capacity(origin, origin_store, sources, tmp_path, capsys, policy):
    blocks = _blocks(origin_store, "base")
    capacity = 3 * max(b.nbytes for b in blocks.values())
    assert capacity < sum(b.nbytes for b in blocks.values())
    with Served.edge(origin.url, str(capacity), policy) as edge:
        for i in range(2):
            code, _, err = run_cli(
                capsys, "--store", tmp_path / f"d{i}", "pull", "base", "--from", edge.url, "--out", tmp_path / f"o{i}"
            )
            assert code == 0, err
            assert sha256_tree(tmp_path / f"o{i}") == sha256_tree(sources["base"])
            st = edge.stats()
            assert 0 < st["cached_bytes"] <= capacity and st["evictions"] > 0, st
        assert st["policy"] == policy and st["capacity"] == capacity


def test_edge_refuses_bad_options(capsys):
    code, _, err = run_cli(capsys, "serve", "--upstream", "http://127.0.0.1:1", "--capacity", "1MB", "--policy", "x")
    assert code == 2 and "--policy" in err
    code, _, err = run_cli(capsys, "serve", "--upstream", "http://127.0.0.1:1")
    assert code == 2 and "--capacity" in err
    code, _, err = run_cli(capsys, "serve", "--capacity", "1MB")
    assert code == 2 and "--upstream" in err


def test_eviction_orders():
    lru = LRU()
    for k in "abc":
        lru.add(k)
    lru.touch("a")
    assert list(lru.victims()) == ["b", "c", "a"]
    lfu = LFU()
    for k in "abc":
        lfu.add(k)
    lfu.touch("a")
    lfu.touch("a")
    lfu.touch("c")
    assert list(lfu.victims()) == ["b", "c", "a"]
    lfu.remove("b")
    assert list(lfu.victims()) == ["c", "a"]
    with pytest.raises(ValueError, match="--policy"):
        make_policy("fifo")


def test_missing_net_extra_is_named(monkeypatch, capsys):
    """Without the net extra's packages, `pbkit serve` says which extra to install (other commands run)."""
    import sys

    from pbkit.cli.app import _missing_extra_message, main

    assert "pbkit[net]" in _missing_extra_message("starlette.applications")
    monkeypatch.setitem(sys.modules, "starlette", None)  # `import starlette` raises ModuleNotFoundError
    monkeypatch.setitem(sys.modules, "starlette.applications", None)
    monkeypatch.delitem(sys.modules, "pbkit.net.server", raising=False)
    code = main(["--store", "/nonexistent", "serve", "--port", "0"])
    err = capsys.readouterr().err
    assert code == 1 and "pbkit[net]" in err and err.count("\n") == 1
    assert main(["--version"]) == 0
