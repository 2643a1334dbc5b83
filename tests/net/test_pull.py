"""`pbkit pull` against a real `pbkit serve` on 127.0.0.1: bit-exact models, only the missing
blocks fetched, bases matched by content digest, resume after SIGKILL."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest
from net_helpers import BadServer, block_infos, env, only_verified_objects, run_cli, sha256_tree

from pbkit.store import Store


def test_pull_base_bit_exact(origin, sources, tmp_path, capsys):
    code, out, err = run_cli(
        capsys, "--store", tmp_path / "dev", "pull", "base", "--from", origin.url, "--out", tmp_path / "out", "--json"
    )
    assert code == 0, err
    d = json.loads(out)
    assert list(d)[:4] == ["model", "fetched_blocks", "fetched_bytes", "skipped_bytes"]
    with Store.open(tmp_path / "dev", create=False) as s:
        recipe = s.recipe("base")
        assert s.list_models() == ["base"] and s.verify().ok
    assert d["fetched_blocks"] == len(recipe.blocks()) and d["fetched_bytes"] == recipe.block_bytes()
    assert d["skipped_bytes"] == 0
    assert sha256_tree(tmp_path / "out") == sha256_tree(sources["base"])
    # again: nothing to fetch
    code, out, _ = run_cli(capsys, "--store", tmp_path / "dev", "pull", "base", "--from", origin.url, "--json")
    assert code == 0 and json.loads(out)["fetched_blocks"] == 0 and json.loads(out)["registered"] == []


def test_pull_adapter_fetches_only_what_the_base_lacks(origin, origin_store, sources, tmp_path, capsys):
    dev = tmp_path / "dev"
    assert run_cli(capsys, "--store", dev, "pull", "base", "--from", origin.url)[0] == 0
    code, out, err = run_cli(
        capsys, "--store", dev, "pull", "lora", "--from", origin.url, "--out", tmp_path / "lora", "--json"
    )
    assert code == 0, err
    d = json.loads(out)
    with Store.open(origin_store, create=False) as o:
        unshared = o.need("lora", o.model_blocks("base"))
    assert d["fetched_bytes"] == unshared.needed_bytes and d["fetched_blocks"] == len(unshared.needed)
    assert sha256_tree(tmp_path / "lora") == sha256_tree(sources["lora"])
    with Store.open(dev, create=False) as s:
        assert s.index.model("lora").base == "base" and s.verify().ok


def test_pull_into_an_empty_store_brings_the_base(origin, sources, tmp_path, capsys):
    code, out, err = run_cli(capsys, "--store", tmp_path / "dev", "pull", "lora", "--from", origin.url, "--json")
    assert code == 0, err
    assert json.loads(out)["registered"] == ["base", "lora"]
    assert run_cli(capsys, "--store", tmp_path / "dev", "assemble", "base", "--out", tmp_path / "b")[0] == 0
    assert sha256_tree(tmp_path / "b") == sha256_tree(sources["base"])


def test_base_matched_by_content_digest(origin, sources, tmp_path, capsys):
    dev = tmp_path / "dev"
    with Store.open(dev) as s:
        s.ingest(sources["base"], name="my-base")  # same content, another name
    code, out, err = run_cli(capsys, "--store", dev, "pull", "ft", "--from", origin.url, "--json")
    assert code == 0, err
    with Store.open(dev, create=False) as s:
        assert s.index.model("ft").base == "my-base" and s.verify().ok
        assert s.list_models() == ["ft", "my-base"]


def test_base_with_other_content_is_refused_by_name(origin, sources, tmp_path, capsys):
    dev = tmp_path / "dev"
    with Store.open(dev) as s:
        s.ingest(sources["other"], name="base")
    code, out, err = run_cli(capsys, "--store", dev, "pull", "lora", "--from", origin.url)
    assert code == 2 and err.count("\n") == 1 and "'base'" in err and "refusing" in err
    with Store.open(dev, create=False) as s:
        assert s.list_models() == ["base"]


def test_unknown_model_and_unreachable_server(origin, tmp_path, capsys):
    code, _, err = run_cli(capsys, "--store", tmp_path / "dev", "pull", "nope", "--from", origin.url)
    assert code == 2 and "no model named 'nope'" in err
    with _closed_port() as url:
        code, _, err = run_cli(capsys, "--store", tmp_path / "dev", "pull", "base", "--from", url)
    assert code == 1 and err.count("\n") == 1 and url in err and "cannot connect" in err


class _closed_port:
    """A URL on 127.0.0.1 where nothing listens."""

    def __enter__(self) -> str:
        import socket

        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        self.port = s.getsockname()[1]
        s.close()
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *exc) -> None:
        pass


def test_resume_after_sigkill(origin, origin_store, sources, tmp_path):
    dev = tmp_path / "dev"
    infos = block_infos(origin_store)
    n_blocks = len(infos)
    with BadServer(origin_store, "slow", delay=0.15) as slow:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pbkit.cli",
                "--store",
                str(dev),
                "pull",
                "ft",
                "--from",
                slow.url,
                "--workers",
                "2",
            ],
            env=env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while slow.served < 4 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    with Store.open(dev, create=False) as s:
        held = set(s.objects.iter_ids())
        assert s.list_models() == [] and s.verify().ok
    ft_blocks = set(block_infos_of(origin_store, "ft"))
    assert 0 < len(held & ft_blocks) < len(ft_blocks) <= n_blocks
    assert only_verified_objects(dev, infos)
    out = subprocess.run(
        [sys.executable, "-m", "pbkit.cli", "--store", str(dev), "pull", "ft", "--from", origin.url, "--json"],
        env=env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    d = json.loads(out.stdout)
    wanted = ft_blocks | set(block_infos_of(origin_store, "base"))  # the base comes along: the store keeps bases
    assert d["fetched_blocks"] == len(wanted - held)  # only what was still missing
    with Store.open(dev, create=False) as s:
        assert s.verify().ok
        s.assemble("ft", tmp_path / "ft")
    assert sha256_tree(tmp_path / "ft") == sha256_tree(sources["ft"])


def block_infos_of(store_dir, name):
    with Store.open(store_dir, create=False) as s:
        return s.recipe(name).blocks()


@pytest.mark.parametrize(
    "mode,words",
    [
        # the server dies mid-body and stops listening: the client's retry of that block meets
        # either the dying connection or the closed port, whichever comes first under load
        ("die", ("broke off the transfer", "cannot connect")),
        ("truncate", "broke off the transfer"),
        ("short", "truncated body"),
        ("corrupt", "do not hash to block"),
    ],
)
def test_a_misbehaving_server_leaves_the_store_clean(origin_store, tmp_path, capsys, mode, words):
    dev = tmp_path / "dev"
    with BadServer(origin_store, mode, after=3) as bad:
        code, out, err = run_cli(capsys, "--store", dev, "pull", "base", "--from", bad.url, "--workers", "1")
    assert code == 1, err
    words = (words,) if isinstance(words, str) else words
    assert err.count("\n") == 1 and err.startswith(f"pbkit: error: {bad.url}/v1/"), err
    assert any(w in err for w in words), err
    if mode != "die":
        assert "/v1/blocks/" in err
    with Store.open(dev, create=False) as s:
        assert s.list_models() == []
    assert only_verified_objects(dev, block_infos(origin_store))


def test_resume_continues_a_block_cut_off_midway(origin, origin_store, sources, tmp_path):
    """SIGKILL in the middle of a block: the rerun asks only for the rest of it (a Range request)."""
    dev = tmp_path / "dev"
    with BadServer(origin_store, "trickle", delay=0.2) as slow:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pbkit.cli",
                "--store",
                str(dev),
                "pull",
                "base",
                "--from",
                slow.url,
                "--workers",
                "1",
            ],
            env=env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        parts: list = []
        while time.monotonic() < deadline and proc.poll() is None:
            parts = [p for p in (dev / "tmp").glob("*.part")] if (dev / "tmp").is_dir() else []
            if parts and parts[0].stat().st_size > 0:
                break
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    partial = {p.name.split("pull-")[1][:64]: p.stat().st_size for p in (dev / "tmp").glob("*.part")}
    infos = block_infos_of(origin_store, "base")
    assert partial and all(0 < n < infos[b].nbytes for b, n in partial.items())
    with Store.open(dev, create=False) as s:
        held = set(s.objects.iter_ids())
    missing = sum(i.nbytes for b, i in infos.items() if b not in held)
    out = subprocess.run(
        [sys.executable, "-m", "pbkit.cli", "--store", str(dev), "pull", "base", "--from", origin.url, "--json"],
        env=env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["fetched_bytes"] == missing - sum(partial.values())
    assert not list((dev / "tmp").glob("*.part"))
    with Store.open(dev, create=False) as s:
        assert s.verify().ok
        s.assemble("base", tmp_path / "base")
    assert sha256_tree(tmp_path / "base") == sha256_tree(sources["base"])
