"""Network demo: a device pulls an adapter through an edge node, then runs it.

    .venv/bin/python examples/demo_network.py [WORKDIR]      (after demo_store and demo_zoo)

Starts `pbkit serve` on WORKDIR/store (the origin) and an edge node in front of it
(`pbkit serve --upstream ... --capacity 256MB --policy lru`), both on 127.0.0.1 with free ports.
Two devices hold the base (pulled straight from the origin). Device 1 pulls a LoRA adapter of
the zoo through the cold edge: only the adapter's own blocks travel, the edge fetching each from
the origin once, every block verified on arrival (by the edge and by the device). Device 2 pulls
the same adapter through the now warm edge, which serves it without asking the origin. Device 2
then writes the adapter and
its base out bit-exactly, loads them with transformers + peft and checks that its outputs equal
the original adapter's. The edge's stats (hits, misses, bytes from upstream) are printed.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import httpx

from pbkit.cli import main as pbkit_main

REPO = Path(__file__).resolve().parents[1]


class _Server:
    """`pbkit serve ARGS --port 0` in a subprocess; the URL it printed; stopped on exit."""

    def __init__(self, args: list[str]) -> None:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pbkit.cli", *args, "--port", "0"], env=env, stdout=subprocess.PIPE, text=True
        )
        line: list[str] = []
        reader = threading.Thread(target=lambda: line.append(self.proc.stdout.readline()), daemon=True)
        reader.start()
        reader.join(60)
        m = re.search(r" on (http://127\.0\.0\.1:\d+) ", line[0] if line else "")
        if m is None:
            self.stop()
            raise SystemExit(f"pbkit serve {' '.join(args)} did not start")
        self.url = m.group(1)
        print(line[0].strip())

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)

    def __enter__(self) -> "_Server":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def _pull(store: Path, name: str, url: str, out: Path | None = None) -> dict:
    args = ["--store", str(store), "pull", name, "--from", url, "--json"] + (["--out", str(out)] if out else [])
    from contextlib import redirect_stdout
    from io import StringIO

    buf = StringIO()
    with redirect_stdout(buf):
        code = pbkit_main(args)
    if code != 0:
        raise SystemExit(code)
    return json.loads(buf.getvalue())


def _sha256_tree(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def pick_adapter(store_dir: Path, zoo: Path) -> tuple[str, str] | None:
    """A LoRA adapter of the zoo and its base (both built in zoo/), the first by name."""
    from pbkit.store import Store

    with Store.open(store_dir, create=False) as store:
        for row in store.index.models():
            if row.kind == "adapter" and row.base and "lora" in row.name:
                if (zoo / row.name).is_dir() and (zoo / row.base).is_dir():
                    return row.name, row.base
    return None


def main(workdir: Path) -> None:
    from pbkit.common.sizes import format_size

    workdir = Path(workdir)
    store_dir, zoo = workdir / "store", workdir / "zoo"
    picked = pick_adapter(store_dir, zoo) if store_dir.is_dir() else None
    if picked is None:
        print("no zoo adapter in the store (run demo_store and demo_zoo first); skipping the network demo")
        return
    adapter, base = picked
    net = workdir / "network"
    shutil.rmtree(net, ignore_errors=True)
    net.mkdir(parents=True)
    with _Server(["--store", str(store_dir), "serve"]) as origin:
        with _Server(["serve", "--upstream", origin.url, "--capacity", "256MB", "--policy", "lru"]) as edge:
            for device in ("device-1", "device-2"):  # both already hold the base, from the origin
                _pull(net / device, base, origin.url)
            s0 = httpx.get(f"{edge.url}/v1/stats", timeout=10).json()
            d1 = _pull(net / "device-1", adapter, edge.url)
            s1 = httpx.get(f"{edge.url}/v1/stats", timeout=10).json()
            print(
                f"device 1 (holds {base}) pulled {adapter} through the cold edge: {d1['fetched_blocks']} blocks, "
                f"{format_size(d1['fetched_bytes'])}; the edge: {s1['misses'] - s0['misses']} misses, "
                f"{format_size(s1['bytes_from_upstream'] - s0['bytes_from_upstream'])} from the origin"
            )
            d2 = _pull(net / "device-2", adapter, edge.url, out=net / "out" / adapter)
            s2 = httpx.get(f"{edge.url}/v1/stats", timeout=10).json()
            print(
                f"device 2 (holds {base}) pulled {adapter} through the warm edge: {d2['fetched_blocks']} blocks, "
                f"{format_size(d2['fetched_bytes'])}; the edge: {s2['hits'] - s1['hits']} hits, "
                f"{s2['misses'] - s1['misses']} misses, "
                f"{format_size(s2['bytes_from_upstream'] - s1['bytes_from_upstream'])} from the origin"
            )
    if pbkit_main(["--store", str(net / "device-2"), "assemble", base, "--out", str(net / "out" / base)]) != 0:
        raise SystemExit("cannot assemble the base on device 2")
    same = _sha256_tree(net / "out" / adapter) == _sha256_tree(zoo / adapter)
    print(f"device 2's {adapter} is bit-exact (SHA-256 of every file): {same}")
    if not same:
        raise SystemExit("pulled adapter differs from the original")
    import importlib.util

    spec = importlib.util.spec_from_file_location("demo_delivery", Path(__file__).with_name("demo_delivery.py"))
    demo_delivery = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo_delivery)
    equal = demo_delivery.outputs_equal(zoo / adapter, zoo / base, net / "out" / adapter, net / "out" / base)
    print(f"device 2 runs {adapter} on {base}: outputs equal the original's (torch.equal): {equal}")
    if not equal:
        raise SystemExit("pulled adapter gives different outputs")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(".pbkit-demo"))
