"""Zoo spec parsing: the packaged default spec, and one-line errors naming the file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from pbkit.cli import main as cli_main
from pbkit.zoo.builder import plan_zoo
from pbkit.zoo.spec import ZooSpecError, derive_seed, load_spec, parse_spec


def test_default_spec_has_the_required_families():
    spec = load_spec("default")
    fams = {f.name: f for f in spec.families}
    minilm = fams["minilm"]
    assert minilm.base.source == "bundled"
    assert len(minilm.task_models) >= 8 and len(minilm.adapters) >= 8
    assert len({t.frozen_layers for t in minilm.task_models}) >= 5  # k varies per task
    loras = [a for a in minilm.adapters if a.peft_type == "lora"]
    assert len({a.r for a in loras}) >= 3 and len({a.target_modules for a in loras}) >= 3
    assert any(a.peft_type == "ia3" for a in minilm.adapters)
    assert any(a.modules_to_save for a in minilm.adapters)
    assert {f.base.value for f in spec.families if f.base.source == "tiny"} == {"gpt2", "llama"}
    names = spec.model_names()
    assert len(names) == len(set(names))


def test_seeds_do_not_depend_on_order():
    spec = load_spec("default")
    fam = spec.families[0]
    assert fam.task_models[0].seed == derive_seed(spec.seed, fam.model_name(fam.task_models[0]))
    seeds = {e.seed for e in fam.task_models + fam.adapters}
    assert len(seeds) == len(fam.task_models) + len(fam.adapters)


def test_spec_hash_follows_base_and_entry():
    base = {
        "name": "f",
        "base": {"tiny": "gpt2", "seed": 1},
        "task_models": [{"name": "a", "frozen_layers": 1, "task": "lm"}],
    }
    plan1 = plan_zoo(parse_spec({"families": [base]}))
    other_base = {**base, "base": {"tiny": "gpt2", "seed": 2}}
    plan2 = plan_zoo(parse_spec({"families": [other_base]}))
    assert plan1[1].spec_hash != plan2[1].spec_hash  # a new base rebuilds its children
    more_steps = {**base, "task_models": [{"name": "a", "frozen_layers": 1, "task": "lm", "steps": 5}]}
    plan3 = plan_zoo(parse_spec({"families": [more_steps]}))
    assert plan1[0].spec_hash == plan3[0].spec_hash and plan1[1].spec_hash != plan3[1].spec_hash


FAM = {"name": "f", "task_models": [{"name": "a", "frozen_layers": 1}]}


@pytest.mark.parametrize(
    "data, key, problem",
    [
        ({"families": []}, "families", "non-empty list"),
        ({"families": [FAM], "colour": 1}, "colour", "unknown key"),
        ({"families": [{**FAM, "bases": {}}]}, "families[0].bases", "unknown key"),
        ({"families": [{"task_models": []}]}, "families[0].name", "missing"),
        ({"families": [{"name": "Bad Name"}]}, "families[0].name", "not a name"),
        ({"families": [{**FAM, "base": {"tiny": "t5"}}]}, "families[0].base.tiny", "not one of"),
        ({"families": [{**FAM, "base": {"tiny": "gpt2", "path": "/x"}}]}, "families[0].base", "exactly one"),
        ({"families": [{**FAM, "base": {"path": "/x", "revision": "main"}}]}, "families[0].base.revision", "hub"),
        (
            {"families": [{"name": "f", "task_models": [{"name": "a"}]}]},
            "families[0].task_models[0].frozen_layers",
            "missing",
        ),
        (
            {"families": [{"name": "f", "task_models": [{"name": "a", "frozen_layers": "two"}]}]},
            "families[0].task_models[0].frozen_layers",
            "integer",
        ),
        (
            {"families": [{"name": "f", "task_models": [{"name": "a", "frozen_layers": 1, "steps": 0}]}]},
            "families[0].task_models[0].steps",
            "not in",
        ),
        (
            {"families": [{"name": "f", "task_models": [{"name": "a", "frozen_layers": 1, "lr": -1}]}]},
            "families[0].task_models[0].lr",
            "positive",
        ),
        (
            {"families": [{"name": "f", "task_models": [{"name": "a", "frozen_layers": 1, "dtype": "int8"}]}]},
            "families[0].task_models[0].dtype",
            "not one of",
        ),
        (
            {"families": [{"name": "f", "adapters": [{"name": "x", "peft_type": "ia3", "r": 4}]}]},
            "families[0].adapters[0].r",
            "IA3",
        ),
        (
            {"families": [{"name": "f", "adapters": [{"name": "x", "peft_type": "prefix"}]}]},
            "families[0].adapters[0].peft_type",
            "not one of",
        ),
        (
            {"families": [{"name": "f", "adapters": [{"name": "x", "target_modules": 3}]}]},
            "families[0].adapters[0].target_modules",
            "list of strings",
        ),
        ({"families": [{"name": "f", "defaults": {"rank": 3}}]}, "families[0].defaults.rank", "unknown key"),
        ({"families": [FAM, FAM]}, "families[1]", "defined twice"),
    ],
)
def test_bad_spec_names_file_and_key(data, key, problem):
    with pytest.raises(ZooSpecError) as info:
        parse_spec(data, where="zoo.yaml")
    msg = str(info.value)
    assert msg.startswith(f"zoo.yaml: {key}: "), msg
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
    assert (
        err
        == f"pbkit: error: {typo}: families[0].adapters[0].rank: unknown key (allowed: name, peft_type, r, alpha, target_modules, modules_to_save, seed, task, num_labels, steps, lr, batch_size, seq_len)"
    )
    assert not (tmp_path / "z").exists()


def test_toml_spec(tmp_path):
    path = tmp_path / "zoo.toml"
    path.write_text(
        'name = "t"\n[[families]]\nname = "f"\nbase = {tiny = "llama"}\n[[families.adapters]]\nname = "a"\ntarget_modules = ["q_proj"]\n'
    )
    spec = load_spec(path)
    assert spec.families[0].adapters[0].target_modules == ("q_proj",)
    assert Path(spec.path) == path
