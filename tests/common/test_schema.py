"""The schema key of JSON result documents (pbkit.common.schema)."""

from __future__ import annotations

import pytest

from pbkit.common.schema import SchemaError, check_schema, schema_id, versioned


def test_schema_key_names_kind_and_version():
    doc = versioned("sim-compare", {"policies": {}, "schema": "stale"})
    assert list(doc) == ["schema", "policies"] and doc["schema"] == schema_id("sim-compare") == "pbkit.sim-compare/2"
    assert check_schema(doc, "sim-compare", "compare.json") is doc
    for bad, words in (
        ({"policies": {}}, "written before result schemas"),
        ({"schema": "pbkit.sim-compare/3"}, "pbkit.sim-compare/3"),
        ({"schema": "pbkit.sweep-summary/2"}, "pbkit.sweep-summary/2"),
        ([], "not a JSON object"),
    ):
        with pytest.raises(SchemaError, match=words) as err:
            check_schema(bad, "sim-compare", "compare.json")
        assert str(err.value).startswith("compare.json: ") and "\n" not in str(err.value)
