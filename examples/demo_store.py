"""Demo section 1: the PB store on the bundled base model.

    python examples/demo_store.py [WORKDIR]        (default .pbkit-demo)

Ingests the bundled all-MiniLM-L6-v2 into WORKDIR/store, plus a partial fine-tune of it made
here (two tensors changed, so everything else dedups), plus every model of WORKDIR/zoo/ if a
zoo was built there; prints the dedup table; assembles the fine-tune from the store and shows
it is bit-exact (every file's SHA-256) and gives identical outputs (torch.equal).
"""

from __future__ import annotations

import hashlib
import shutil
import sys
import warnings
from pathlib import Path

from rich.console import Console
from rich.table import Table

from pbkit.store import Store
from pbkit.zoo.bundled import BUNDLED_NAME, bundled_model_dir

FT_NAME = f"{BUNDLED_NAME}-pooler-ft"
CHANGED = ("pooler.dense.weight", "pooler.dense.bias")


def _sha256_tree(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def make_partial_finetune(base: Path, out: Path) -> Path:
    """A copy of `base` whose pooler was "fine-tuned" (deterministically perturbed)."""
    import torch
    from safetensors.torch import load_file, save_file

    if (out / "model.safetensors").is_file():
        return out
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(base, tmp)
    sd = load_file(str(base / "model.safetensors"))
    g = torch.Generator().manual_seed(0)
    for k in CHANGED:
        sd[k] = sd[k] + 0.01 * torch.randn(sd[k].shape, generator=g)
    save_file(sd, str(tmp / "model.safetensors"), metadata={"format": "pt"})
    tmp.rename(out)
    return out


def _zoo_models(zoo: Path) -> list[tuple[str, Path, str | None]]:
    """(name, directory, base) of each model of a built zoo, each after its base."""
    if not zoo.is_dir():
        return []
    from pbkit.zoo.builder import read_manifest

    pending = {name: data.get("base") for name, data in read_manifest(zoo).items()}
    ordered: list[tuple[str, Path, str | None]] = []
    while pending:  # topological: a model after its base
        ready = [n for n, b in pending.items() if b is None or b not in pending]
        if not ready:
            raise SystemExit(f"{zoo}: models whose bases form a cycle: {sorted(pending)}")
        for n in ready:
            ordered.append((n, zoo / n, pending.pop(n)))
    return ordered


def main(workdir: Path) -> None:
    workdir = Path(workdir)
    console = Console(width=None if sys.stdout.isatty() else 120)
    base_dir = bundled_model_dir()
    ft_dir = make_partial_finetune(base_dir, workdir / "models" / FT_NAME)

    with Store.open(workdir / "store") as store, warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        todo = [(BUNDLED_NAME, base_dir, None), (FT_NAME, ft_dir, BUNDLED_NAME)] + _zoo_models(workdir / "zoo")
        for name, path, base in todo:
            r = store.ingest(path, name=name, base=base)
            state = "unchanged" if r.unchanged else f"{r.new_bytes / 1e6:8.1f} MB new"
            console.print(f"  ingest {name:<32} {r.kind:<17} {state}  ({r.seconds:.2f} s)")

        table = Table(title=f"PB store {store.root}", title_justify="left")
        for col, justify in (
            ("model", "left"),
            ("kind", "left"),
            ("base", "left"),
            ("logical MB", "right"),
            ("blocks", "right"),
            ("own MB", "right"),
            ("shared MB", "right"),
            ("delta MB", "right"),
        ):
            table.add_column(col, justify=justify)
        for row in store.dedup_table():
            table.add_row(
                row["name"],
                row["kind"],
                row["base"] or "",
                f"{row['logical_bytes'] / 1e6:,.1f}",
                str(row["blocks"]),
                f"{row['own_bytes'] / 1e6:,.2f}",
                f"{row['shared_bytes'] / 1e6:,.1f}",
                f"{row['delta_bytes'] / 1e6:,.1f}",
            )
        console.print(table)
        s = store.stats()
        console.print(
            f"{s['models']} models, {s['blocks']} blocks: logical {s['logical_bytes'] / 1e6:,.1f} MB, "
            f"stored {s['unique_bytes'] / 1e6:,.1f} MB (dedup ratio {s['dedup_ratio']:.2f})"
        )

        out = workdir / "assembled" / FT_NAME
        shutil.rmtree(out, ignore_errors=True)
        need = store.need(FT_NAME, store.model_blocks(BUNDLED_NAME))
        console.print(
            f"a device holding {BUNDLED_NAME} needs {len(need.needed)} blocks, "
            f"{need.needed_bytes / 1e6:.2f} MB of {need.total_bytes / 1e6:.1f} MB, for {FT_NAME}"
        )
        report = store.assemble(FT_NAME, out)
    same = _sha256_tree(out) == _sha256_tree(ft_dir)
    console.print(
        f"assembled {FT_NAME} into {out} in {report.seconds:.2f} s: "
        f"{report.files} files, bit-exact (SHA-256 of every file): {same}"
    )
    if not same:
        raise SystemExit("assembled model differs from the original")
    _compare_outputs(ft_dir, out, console)


def _compare_outputs(original: Path, assembled: Path, console: Console) -> None:
    import torch
    import transformers

    torch.set_num_threads(2)
    tok = transformers.AutoTokenizer.from_pretrained(assembled)
    batch = tok(["parameter blocks over the air", "edge caching of models"], return_tensors="pt", padding=True)
    with torch.no_grad():
        a = transformers.AutoModel.from_pretrained(original)(**batch).pooler_output
        b = transformers.AutoModel.from_pretrained(assembled)(**batch).pooler_output
    console.print(f"outputs of the original and the assembled model identical (torch.equal): {torch.equal(a, b)}")
    if not torch.equal(a, b):
        raise SystemExit("assembled model gives different outputs")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else ".pbkit-demo").resolve())
