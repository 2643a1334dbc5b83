"""The one size parser (pbkit/common/sizes.py) and the size options that use it."""

from __future__ import annotations

import pytest

from pbkit.cli import main
from pbkit.common.sizes import SizeError, format_size, parse_size


@pytest.mark.parametrize(
    "text,expected",
    [
        ("67108864", 67108864),
        ("64MiB", 64 * 2**20),
        ("64 mib", 64 * 2**20),
        ("16MB", 16_000_000),
        ("1.5GB", 1_500_000_000),
        ("1.5GiB", 3 * 2**29),
        ("1e9", 10**9),
        ("2.5e3", 2500),
        ("8kB", 8000),
        ("8KiB", 8192),
        ("3b", 3),
        ("1TB", 10**12),
        ("0", 0),
        (4096, 4096),
    ],
)
def test_parse_size(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize(
    "text", ["", "MiB", "12 parsecs", "-5MiB", "1.5", "0.1kB x", "1,000", "nan", "inf", "1e-3", "64M", True]
)
def test_bad_sizes_name_the_option_and_value(text):
    with pytest.raises(SizeError) as info:
        parse_size(text, "--max-bytes")
    msg = str(info.value)
    assert msg.startswith("--max-bytes ") and repr(str(text)) in msg and "\n" not in msg


def test_minimum():
    assert parse_size("1", minimum=1) == 1
    with pytest.raises(SizeError, match="at least 1 bytes"):
        parse_size("0", "--max-bytes", minimum=1)


def test_format_size():
    assert format_size(812) == "812 B"
    assert format_size(22_700_000) == "22.7 MB"
    assert format_size(13_476_000_000) == "13.48 GB"


def test_export_fixed_without_max_bytes_names_the_option(tmp_path, capsys):
    code = main(
        [
            "--store",
            str(tmp_path / "s"),
            "library",
            "export",
            "--granularity",
            "fixed",
            "--out",
            str(tmp_path / "l.json"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "--max-bytes" in err and "None" not in err and len(err.strip().splitlines()) == 1


def test_size_option_accepts_units(tmp_path, capsys):
    out = tmp_path / "s.json"
    assert main(["library", "synthetic", "--out", str(out), "--mean-pb-bytes", "64KiB", "--json"]) == 0
    import json

    assert json.loads(capsys.readouterr().out)["models"] > 0
    code = main(["library", "synthetic", "--out", str(out), "--mean-pb-bytes", "64 parsecs"])
    err = capsys.readouterr().err
    assert code == 2 and "--mean-pb-bytes" in err and "64 parsecs" in err
