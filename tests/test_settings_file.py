"""The shared settings-file reader: formats, and one-line errors naming the file."""

from __future__ import annotations

import pytest

from pbkit.common.settings import read_settings
from pbkit.errors import PbkitError


class SettingsError(PbkitError):
    pass


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("a.yaml", "x: 1\ny: [1, 2]\n"),
        ("a.yml", "x: 1\ny: [1, 2]\n"),
        ("a.toml", "x = 1\ny = [1, 2]\n"),
        ("a.json", '{"x": 1, "y": [1, 2]}'),
    ],
)
def test_every_format_gives_the_same_mapping(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    assert read_settings(path, SettingsError) == {"x": 1, "y": [1, 2]}


def test_empty_yaml_is_an_empty_mapping(tmp_path):
    (tmp_path / "e.yaml").write_text("")
    assert read_settings(tmp_path / "e.yaml", SettingsError) == {}


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("bad.yaml", "x: [1, 2\n", "not valid YAML"),
        ("bad.toml", "x = = 1\n", "not valid TOML"),
        ("bad.json", "{", "not valid JSON"),
        ("list.yaml", "- 1\n- 2\n", "top level is not a mapping"),
    ],
)
def test_bad_files_give_one_line_errors_naming_the_file(tmp_path, name, text, message):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(SettingsError) as info:
        read_settings(path, SettingsError)
    assert str(info.value).startswith(f"{path}: {message}") and "\n" not in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(SettingsError, match="missing.yaml: cannot read"):
        read_settings(tmp_path / "missing.yaml", SettingsError)
