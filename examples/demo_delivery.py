"""Delivery demo: compare the caching baselines on the zoo's PB library (or a synthetic one), then
follow one user end to end: the simulator delivers the blocks of the adapter it asked for, in
simulated time; the device rebuilds the adapter and its base bit-exactly from those blocks alone,
loads them with transformers + peft and gets outputs equal to the original model's.

    .venv/bin/python examples/demo_delivery.py [WORKDIR]
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from pathlib import Path

from pbkit.cli import main as pbkit_main


def main(workdir: Path) -> None:
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    library = workdir / "library.json"
    spec = str(library) if library.exists() else "synthetic"
    print(f"delivery demo: policy comparison on {spec}")
    code = pbkit_main(
        [
            "sim",
            "compare",
            "--library",
            spec,
            "--policies",
            "random,popular,lfu,coarse,noncoop,greedy",
            "--seeds",
            "3",
            "--slots",
            "8",
            "--out",
            str(workdir / "sim-compare"),
        ]
    )
    if code != 0:
        raise SystemExit(code)
    if library.exists() and (workdir / "store").is_dir() and (workdir / "zoo").is_dir():
        deliver_and_rebuild(workdir)


def _sha256_tree(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def deliver_and_rebuild(workdir: Path, slots: int = 2) -> dict:
    """Simulate `slots` slots with --deliver-to, pick a user who received an adapter (else a
    fine-tune) from the zoo, rebuild it on the "device" and compare bytes and outputs.
    Returns what was checked; raises SystemExit on any difference."""
    from delivery.device import rebuild
    from pbkit.store import Store

    delivered = workdir / "delivered"
    shutil.rmtree(delivered, ignore_errors=True)
    store_dir, zoo = workdir / "store", workdir / "zoo"
    code = pbkit_main(
        [
            "--store",
            str(store_dir),
            "sim",
            "run",
            "--library",
            str(workdir / "library.json"),
            "--policy",
            "greedy",
            "--slots",
            str(slots),
            "--seed",
            "0",
            "--scenario",
            "small",
            "--deliver-to",
            str(delivered),
        ]
    )
    if code != 0:
        raise SystemExit(code)
    with Store.open(store_dir, create=False) as store:
        users = []
        for manifest in sorted(delivered.glob("slot-*/user-*/manifest.json")):
            m = json.loads(manifest.read_text())
            if (zoo / m["model"]).is_dir():
                kind = store.recipe(m["model"]).kind
                users.append(({"adapter": 0, "partial-finetune": 1}.get(kind, 2), manifest.parent, m, kind))
        if not users:
            print("no user received a zoo model in these slots; nothing to rebuild")
            return {}
        _, user_dir, m, kind = min(users, key=lambda u: u[0])
        print(
            f"{user_dir.relative_to(workdir)}: {m['model']} ({kind}), {len(m['blocks'])} PBs, "
            f"last block at {m['blocks'][-1]['arrival_s']:.3f} s, delay {m['delay_s']:.3f} s"
        )
        device = workdir / "device"
        shutil.rmtree(device, ignore_errors=True)
        built = rebuild(store, user_dir, device)
    same = _sha256_tree(built.path) == _sha256_tree(zoo / m["model"])
    print(
        f"rebuilt {built.model}{f' and its base {built.base}' if built.base else ''} from the received "
        f"blocks alone: bit-exact (SHA-256 of every file): {same}"
    )
    if not same:
        raise SystemExit("rebuilt model differs from the original")
    equal = outputs_equal(zoo / m["model"], zoo / built.base if built.base else None, built.path, built.base_path)
    print(f"outputs of the original and the rebuilt model identical (torch.equal): {equal}")
    if not equal:
        raise SystemExit("rebuilt model gives different outputs")
    return {"model": built.model, "kind": kind, "bit_exact": same, "outputs_equal": equal}


def outputs_equal(original: Path, original_base: Path | None, rebuilt: Path, rebuilt_base: Path | None) -> bool:
    """Load both with transformers (+ peft for an adapter, on its own base) and compare outputs."""
    import torch

    from pbkit.zoo.finetune import load_for_inference

    a = load_for_inference(original, original_base)
    b = load_for_inference(rebuilt, rebuilt_base)
    vocab = int(getattr(a.config, "vocab_size", 100) or 100)
    ids = (torch.arange(3, 19) % vocab).reshape(2, 8)
    with torch.no_grad():
        return bool(torch.equal(a(input_ids=ids)[0], b(input_ids=ids)[0]))


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(".pbkit-demo"))
