"""Bad input discovered while a command runs (a missing or malformed file): one line, exit 2."""

from __future__ import annotations

import pytest

from pbkit.cli import main


def _files(tmp):
    (tmp / "junk.json").write_text("{not json")
    (tmp / "junk.pt").write_bytes(b"\x80\x04junk, not a checkpoint")
    (tmp / "empty-run").mkdir()
    (tmp / "full").mkdir()
    (tmp / "full" / "x").write_text("x")


CASES = [
    (["learn", "eval", "--checkpoint", "{tmp}/no-such-run", "--library", "synthetic"], "no-such-run"),
    (
        ["learn", "eval", "--checkpoint", "{tmp}/junk.pt", "--library", "synthetic"],
        "junk.pt: not a checkpoint directory",
    ),
    (["learn", "eval", "--checkpoint", "{tmp}/empty-run", "--library", "synthetic"], "empty-run"),
    (["sim", "run", "--library", "{tmp}/no-such-lib.json", "--slots", "1"], "no-such-lib.json"),
    (["sim", "run", "--library", "{tmp}/junk.json", "--slots", "1"], "junk.json"),
    (["library", "check", "{tmp}/junk.json"], "junk.json"),
    (["zoo", "build", "{tmp}/no-such-spec.yaml", "--out", "{tmp}/zoo"], "no-such-spec"),
    (["plan", "--arch", "{tmp}/junk.json", "--out", "{tmp}/lib.json"], "junk.json"),
    (["digest", "{tmp}/no-such-model"], "no-such-model"),
    (["report", "--zoo", "{tmp}/no-such-zoo", "--out", "{tmp}/rep"], "no-such-zoo"),
    (["ingest", "{tmp}/full"], "full"),
]


@pytest.mark.parametrize("argv,names", CASES, ids=lambda v: " ".join(v[:3]) if isinstance(v, list) else None)
def test_bad_input_is_one_line(argv, names, tmp_path, capsys):
    _files(tmp_path)
    argv = ["--store", str(tmp_path / "store"), *(a.format(tmp=tmp_path) for a in argv)]
    capsys.readouterr()
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 2, (argv, err)
    assert err.count("\n") == 1 and err.startswith("pbkit: error: ") and "Traceback" not in err, err
    assert names in err, err
