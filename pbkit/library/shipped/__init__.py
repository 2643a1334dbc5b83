"""Shipped PB libraries: planned edge AI service catalogues, ready for `--library NAME`.

Each `<name>.json` here is `pbkit plan --spec pbkit/library/plans/specs/<spec> --granularity layer`,
written by `make libraries` (`python -m pbkit.library.shipped.build`), deterministic byte for byte.
`SHIPPED` is the one table of what is shipped and how it is built; `pbkit.library.resolve_library`
finds the files by name.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

LIBRARIES_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class ShippedLibrary:
    """How one shipped library is built: a plan spec (in pbkit/library/plans/specs/) and a granularity."""

    name: str
    spec: str
    granularity: str = "layer"
    description: str = ""

    @property
    def path(self) -> Path:
        return LIBRARIES_DIR / f"{self.name}.json"


SHIPPED: dict[str, ShippedLibrary] = {
    lib.name: lib
    for lib in (
        ShippedLibrary(
            "llama-2-lora", "llama-2-lora.yaml", description="Llama-2-7B/13B, partial fine-tunes and LoRA adapters"
        ),
        ShippedLibrary("bert", "bert.yaml", description="BERT-base/large, partial fine-tunes and LoRA adapters"),
        ShippedLibrary(
            "vision", "vision.yaml", description="ViT-B/L/H and ResNet-50/101, partial fine-tunes and LoRA adapters"
        ),
        ShippedLibrary("gpt2", "gpt2.yaml", description="GPT-2 S/M/L/XL, partial fine-tunes and LoRA adapters"),
        ShippedLibrary(
            "edge-catalogue", "edge-catalogue.yaml", description="mixed: Llama-2-7B, BERT, GPT-2, ViT, ResNet services"
        ),
        ShippedLibrary(
            "hub-catalogue",
            "hub-catalogue.yaml",
            description="222 models: BERT, GPT-2, ViT, ResNet-50 and 218 partial fine-tunes and LoRA adapters",
        ),
    )
}
