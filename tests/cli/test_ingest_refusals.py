"""Ingest refuses what is not a model, in one line, and stores nothing."""

from __future__ import annotations

import json

import pytest

from pbkit.cli import main


def _run(capsys, *argv) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _models(capsys, store) -> list:
    code, out, _ = _run(capsys, "--store", store, "ls", "--json")
    assert code == 0
    return json.loads(out)


@pytest.mark.parametrize(
    "files", [{"README.md": "# my model\n"}, {"README.md": "x", "config.json": "{}", "notes.txt": "y"}]
)
def test_directory_without_weights_is_refused(files, tmp_path, capsys):
    src = tmp_path / "docs"
    src.mkdir()
    for name, text in files.items():
        (src / name).write_text(text)
    store = tmp_path / "store"
    code, out, err = _run(capsys, "--store", store, "ingest", src)
    assert code == 2 and out == "" and err.count("\n") == 1, err
    assert err.startswith(f"pbkit: error: {src}: no model weights") and "README.md" in err
    assert _models(capsys, store) == []
    code, _, err = _run(capsys, "digest", src)
    assert code == 2 and "no model weights" in err


def test_file_that_is_not_safetensors_says_so(tmp_path, capsys):
    src = tmp_path / "m"
    src.mkdir()
    (src / "config.json").write_text("{}")
    (src / "model.safetensors").write_text("this is an HTML error page, not a model\n" * 4)
    store = tmp_path / "store"
    code, out, err = _run(capsys, "--store", store, "ingest", src)
    assert code == 2 and err.count("\n") == 1, err
    assert "model.safetensors: not a safetensors file: header length" in err and "exceeds" in err
    assert _models(capsys, store) == []


def test_missing_source_is_one_line(tmp_path, capsys):
    code, _, err = _run(capsys, "--store", tmp_path / "s", "ingest", tmp_path / "nowhere" / "model")
    assert code == 2 and err.startswith("pbkit: error: ") and err.count("\n") == 1 and "nowhere" in err
