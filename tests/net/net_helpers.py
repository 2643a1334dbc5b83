"""Servers for the network tests: `pbkit serve` in a subprocess (origin or edge) on a free port,
and a tiny misbehaving block server (http.server in a thread) serving a store's blocks wrongly."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

from pbkit.cli import main as cli_main
from pbkit.store import Store

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 60


def env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(REPO))


class Served:
    """`pbkit serve` in a subprocess; `.url` once it answers /v1/health. Stopped on exit."""

    def __init__(self, args: list[str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pbkit.cli", *args, "--port", "0"],
            env=env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        line = self._first_line()
        m = re.search(r" on (http://127\.0\.0\.1:\d+) ", line)
        if m is None:
            self.stop()
            raise RuntimeError(f"serve did not start: {line!r} {self.proc.stderr.read()[:500]!r}")
        self.url = m.group(1)

    def _first_line(self) -> str:
        out: list[str] = []
        reader = threading.Thread(target=lambda: out.append(self.proc.stdout.readline()), daemon=True)
        reader.start()
        reader.join(START_TIMEOUT_S)
        return out[0] if out else ""

    @classmethod
    def origin(cls, store: Path) -> "Served":
        return cls(["--store", str(store), "serve"])

    @classmethod
    def edge(cls, upstream: str, capacity: str, policy: str = "lru") -> "Served":
        return cls(["serve", "--upstream", upstream, "--capacity", capacity, "--policy", policy])

    def stats(self) -> dict:
        return httpx.get(f"{self.url}/v1/stats", timeout=10).json()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=15)

    def __enter__(self) -> "Served":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


class BadServer:
    """Serves a store's recipes and blocks over plain http.server, misbehaving on blocks:

    - "slow":     every block response waits `delay` s first (to kill a pull mid-transfer)
    - "trickle":  every block body is sent in 8 pieces, `delay` s apart (to kill a pull mid-block)
    - "die":      after `after` good blocks, the server closes mid-body and stops listening
    - "truncate": Content-Length is the block's size, the body half of it, then the connection closes
    - "short":    an honest Content-Length of half the block, and half the block
    - "corrupt":  the block's size, one byte flipped
    Everything is read from the store at start, so the handler threads never touch SQLite.
    """

    def __init__(self, store_dir: Path, mode: str, delay: float = 0.0, after: int = 0) -> None:
        with Store.open(store_dir, create=False) as s:
            self.recipes = {m: s.index.recipe_json(m).encode() for m in s.list_models()}
            self.paths = {b.id: str(s.objects.path(b.id)) for b in s.index.blocks()}
        self.mode, self.delay, self.after = mode, delay, after
        self.served = 0  # block responses completed
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                outer.handle(self)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def handle(self, h: BaseHTTPRequestHandler) -> None:
        m = re.fullmatch(r"/v1/models/(.+)/recipe", h.path)
        if m and m.group(1) in self.recipes:
            return self._send(h, self.recipes[m.group(1)], "application/json")
        m = re.fullmatch(r"/v1/blocks/([0-9a-f]{64})", h.path)
        if not m or m.group(1) not in self.paths:
            return self._send(h, json.dumps({"error": "not found"}).encode(), "application/json", 404)
        data = Path(self.paths[m.group(1)]).read_bytes()
        if self.mode == "slow":
            time.sleep(self.delay)
        with self.lock:
            n = self.served
        if self.mode == "die" and n >= self.after:
            h.send_response(200)
            h.send_header("Content-Length", str(len(data)))
            h.end_headers()
            h.wfile.write(data[: len(data) // 2])
            h.wfile.flush()
            h.close_connection = True
            threading.Thread(target=self.httpd.shutdown, daemon=True).start()
            self.httpd.socket.close()
            return
        if self.mode == "truncate":
            h.send_response(200)
            h.send_header("Content-Length", str(len(data)))
            h.end_headers()
            h.wfile.write(data[: len(data) // 2])
            h.close_connection = True
            return
        if self.mode == "trickle":
            h.send_response(200)
            h.send_header("Content-Length", str(len(data)))
            h.end_headers()
            step = max(1, len(data) // 8)
            for i in range(0, len(data), step):
                h.wfile.write(data[i : i + step])
                h.wfile.flush()
                time.sleep(self.delay)
            with self.lock:
                self.served += 1
            return
        if self.mode == "short":
            data = data[: len(data) // 2]
        if self.mode == "corrupt":
            data = bytes([data[0] ^ 1]) + data[1:]
        self._send(h, data, "application/octet-stream")
        with self.lock:
            self.served += 1

    @staticmethod
    def _send(h: BaseHTTPRequestHandler, body: bytes, ctype: str, status: int = 200) -> None:
        h.send_response(status)
        h.send_header("Content-Type", ctype)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> "BadServer":
        return self

    def __exit__(self, *exc) -> None:
        try:
            self.stop()
        except OSError:
            pass


def run_cli(capsys, *args) -> tuple[int, str, str]:
    capsys.readouterr()
    code = cli_main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def sha256_tree(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(Path(root).rglob("*"))
        if p.is_file()
    }


def block_infos(store_dir: Path) -> dict:
    """Every block of every model of a store (what the origin knows about each block id)."""
    with Store.open(store_dir, create=False) as s:
        out = {}
        for m in s.list_models():
            out.update(s.recipe(m).blocks())
    return out


def only_verified_objects(store_dir: Path, infos: dict) -> bool:
    """`verify` is clean and every object file in the store, indexed or not (a failed pull must not
    leave an unverified block behind), re-hashes to its name; `infos` gives tensors' dtype and shape."""
    from pbkit.model.digest import blob_id, pb_id

    with Store.open(store_dir, create=False) as s:
        if not s.verify().ok:
            return False
        for obj in s.objects.iter_ids():
            data = s.objects.read(obj)
            info = infos.get(obj)
            if info is not None and info.kind == "tensor":
                if pb_id(info.dtype, info.shape, data) != obj:
                    return False
            elif blob_id(data) != obj:
                return False
    return True
