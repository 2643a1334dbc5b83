"""Zoo spec parsing: the packaged default spec, and one-line errors naming the file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from pbkit.cli import main as cli_main
from pbkit.common.settings import SettingsDeprecationWarning
from pbkit.zoo.builder import plan_zoo
from pbkit.zoo.spec import ZooSpecError, derive_seed, load_spec, parse_spec


def test_default_spec_has_the_required_families():
    spec = load_spec("default")
    fams = {f.name: f for f in spec.families}
    minilm = fams["minilm"]
    assert minilm.base.source == "bundled"
    assert len(minilm.finetunes) >= 8 and len(minilm.adapters) >= 8
    assert len({t.frozen_blocks for t in minilm.finetunes}) >= 5  # k varies per task
    loras = [a for a in minilm.adapters if a.type == "lora"]
    assert len({a.r for a in loras}) >= 3 and len({a.target_modules for a in loras}) >= 3
    assert any(a.type == "ia3" for a in minilm.adapters)
    assert any(a.modules_to_save for a in minilm.adapters)
    assert {f.base.value for f in spec.families if f.base.source == "tiny"} == {"gpt2", "llama"}
    names = spec.model_names()
    assert len(names) == len(set(names))


def test_seeds_do_not_depend_on_order():
    spec = load_spec("default")
    fam = spec.families[0]
    assert fam.finetunes[0].seed == derive_seed(spec.seed, fam.model_name(fam.finetunes[0]))
    seeds = {e.seed for e in fam.finetunes + fam.adapters}
    assert len(seeds) == len(fam.finetunes) + len(fam.adapters)


def test_spec_hash_follows_base_and_entry():
    base = {
        "name": "f",
        "base": {"tiny": "gpt2", "seed": 1},
        "finetunes": [{"name": "a", "frozen_blocks": 1, "task": "lm"}],
    }
    plan1 = plan_zoo(parse_spec({"families": [base]}))
    other_base = {**base, "base": {"tiny": "gpt2", "seed": 2}}
    plan2 = plan_zoo(parse_spec({"families": [other_base]}))
    assert plan1[1].spec_hash != plan2[1].spec_hash  # a new base rebuilds its children
    more_steps = {**base, "finetunes": [{"name": "a", "frozen_blocks": 1, "task": "lm", "steps": 5}]}
    plan3 = plan_zoo(parse_spec({"families": [more_steps]}))
    assert plan1[0].spec_hash == plan3[0].spec_hash and plan1[1].spec_hash != plan3[1].spec_hash


FAM = {"name": "f", "finetunes": [{"name": "a", "frozen_blocks": 1}]}


@pytest.mark.parametrize(
    "data, key, problem",
    [
        ({"families": []}, "families", "non-empty list"),
        ({"families": [FAM], "colour": 1}, "", "unknown key 'colour'"),
        ({"families": [{**FAM, "bases": {}}]}, "families[0]", "unknown key 'bases' (did you mean 'base'?)"),
        ({"families": [{"finetunes": []}]}, "families[0].name", "missing"),
        ({"families": [{"name": "Bad Name"}]}, "families[0].name", "not a name"),
        ({"families": [{**FAM, "base": {"tiny": "t5"}}]}, "families[0].base.tiny", "not one of"),
        ({"families": [{**FAM, "base": {"tiny": "gpt2", "path": "/x"}}]}, "families[0].base", "exactly one"),
        ({"families": [{**FAM, "base": {"path": "/x", "revision": "main"}}]}, "families[0].base.revision", "hub"),
        (
            {"families": [{"name": "f", "finetunes": [{"name": "a"}]}]},
            "families[0].finetunes[0].frozen_blocks",
            "missing",
        ),
        (
            {"families": [{"name": "f", "finetunes": [{"name": "a", "frozen_blocks": "two"}]}]},
            "families[0].finetunes[0]",
            "frozen_blocks = 'two' is not an integer",
        ),
        (
            {"families": [{"name": "f", "finetunes": [{"name": "a", "frozen_blocks": 1, "steps": 0}]}]},
            "families[0].finetunes[0].steps",
            "not in",
        ),
        (
            {"families": [{"name": "f", "finetunes": [{"name": "a", "frozen_blocks": 1, "lr": -1}]}]},
            "families[0].finetunes[0].lr",
            "positive",
        ),
        (
            {"families": [{"name": "f", "finetunes": [{"name": "a", "frozen_blocks": 1, "dtype": "int8"}]}]},
            "families[0].finetunes[0].dtype",
            "not one of",
        ),
        (
            {"families": [{"name": "f", "adapters": [{"name": "x", "type": "ia3", "r": 4}]}]},
            "families[0].adapters[0].r",
            "IA3",
        ),
        (
            {"families": [{"name": "f", "adapters": [{"name": "x", "type": "prefix"}]}]},
            "families[0].adapters[0].type",
            "not one of",
        ),
        (
            {"families": [{"name": "f", "adapters": [{"name": "x", "target_modules": 3}]}]},
            "families[0].adapters[0].target_modules",
            "list of strings",
        ),
        ({"families": [{"name": "f", "defaults": {"rank": 3}}]}, "families[0].defaults", "unknown key 'rank'"),
        ({"families": [FAM, FAM]}, "families[1]", "defined twice"),
    ],
)
def test_bad_spec_names_file_and_key(data, key, problem):
    with pytest.raises(ZooSpecError) as info:
        parse_spec(data, where="zoo.yaml")
    msg = str(info.value)
    assert msg.startswith(f"zoo.yaml: {key}: " if key else "zoo.yaml: "), msg
    assert problem in msg and "\n" not in msg


def test_bad_files_and_cli_exit(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("families: [\n")
    with pytest.raises(ZooSpecError, match=r"bad\.yaml: not valid YAML"):
        load_spec(bad)
    with pytest.raises(ZooSpecError, match="no such zoo spec file"):
        load_spec(tmp_path / "missing.yaml")
    typo = tmp_path / "typo.yaml"
    typo.write_text("families:\n  - name: f\n    adapters:\n      - {name: a, rank: 4}\n")
    assert cli_main(["--store", str(tmp_path / "s"), "zoo", "build", str(typo), "--out", str(tmp_path / "z")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"pbkit: error: {typo}: families[0].adapters[0]: unknown key 'rank'"
    assert not (tmp_path / "z").exists()


def test_toml_spec(tmp_path):
    path = tmp_path / "zoo.toml"
    path.write_text(
        'name = "t"\n[[families]]\nname = "f"\nbase = {tiny = "llama"}\n[[families.adapters]]\nname = "a"\ntarget_modules = ["q_proj"]\n'
    )
    spec = load_spec(path)
    assert spec.families[0].adapters[0].target_modules == ("q_proj",)
    assert Path(spec.path) == path


OLD_NAMES = """\
families:
  - name: f
    base: {tiny: gpt2, seed: 1}
    task_models:
      - {name: a, frozen_layers: 1, task: lm}
    adapters:
      - {name: b, peft_type: ia3, task: lm}
"""


def test_old_key_names_are_read_for_one_release_with_a_warning(tmp_path, capsys):
    """task_models/frozen_layers/peft_type: the same spec, the same hashes, one warning line
    per old key naming the file and the new key."""
    old = tmp_path / "old.yaml"
    old.write_text(OLD_NAMES)
    new = tmp_path / "new.yaml"
    new.write_text(
        OLD_NAMES.replace("task_models", "finetunes")
        .replace("frozen_layers", "frozen_blocks")
        .replace("peft_type", "type")
    )
    with pytest.warns(SettingsDeprecationWarning) as caught:
        spec = load_spec(old)
    messages = sorted(str(w.message) for w in caught)
    assert len(messages) == 3 and all(m.startswith(f"{old}: families[0]") and "\n" not in m for m in messages)
    assert any("task_models is deprecated, write finetunes" in m for m in messages)
    assert any("finetunes[0]: frozen_layers is deprecated, write frozen_blocks" in m for m in messages)
    assert any("adapters[0]: peft_type is deprecated, write type" in m for m in messages)
    assert [p.spec_hash for p in plan_zoo(spec)] == [p.spec_hash for p in plan_zoo(load_spec(new))]
    both = tmp_path / "both.yaml"
    both.write_text(OLD_NAMES.replace("task_models:", "finetunes: []\n    task_models:"))
    with pytest.raises(ZooSpecError, match="task_models and finetunes are the same setting"):
        load_spec(both)
    # the command line prints each as one `pbkit: warning:` line
    args = ["--store", str(tmp_path / "s"), "zoo", "build", str(old), "--only", "nope", "--out", str(tmp_path / "z")]
    assert cli_main(args) == 2  # no model named nope: fails after reading the spec
    lines = capsys.readouterr().err.splitlines()
    warned = [line for line in lines if line.startswith("pbkit: warning: ")]
    assert len(warned) == 3 and len(lines) == 4
    assert warned[0].startswith(f"pbkit: warning: {old}: families[0]: task_models is deprecated, write finetunes")
