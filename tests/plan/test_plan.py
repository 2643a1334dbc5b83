"""Plans on the meta device: published parameter counts, agreement with what transformers'
save_pretrained and PEFT really write, declared sharing, and the `pbkit plan` command."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
import torch
import yaml

from pbkit.cli import main as cli_main
from pbkit.library import load_library
from pbkit.library.plan import (
    PlanError,
    load_config,
    plan_base,
    plan_from_hub,
    plan_from_metadata,
    plan_spec,
    shipped_configs,
)

SPECS = Path(__file__).resolve().parents[2] / "pbkit" / "library" / "plans" / "specs"

# Exact parameter counts of each shipped config's own class, and the published figure it rounds
# to (sources in docs/plans.md).
PUBLISHED = {
    "bert-base-uncased": (109_514_298, 110e6),
    "bert-large-uncased": (335_174_458, 335e6),
    "gpt2": (124_439_808, 124e6),
    "gpt2-medium": (354_823_168, 355e6),
    "gpt2-large": (774_030_080, 774e6),
    "gpt2-xl": (1_557_611_200, 1558e6),
    "llama-2-7b": (6_738_415_616, 6.74e9),
    "llama-2-13b": (13_015_864_320, 13.02e9),
    "vit-base-patch16-224": (86_567_656, 86.6e6),
    "vit-large-patch16-224": (304_326_632, 304e6),
    "vit-huge-patch14-224-in21k": (632_404_480, 632e6),
    "resnet-50": (25_557_032, 25.6e6),
    "resnet-101": (44_549_160, 44.5e6),
}


def header(path: Path) -> list[tuple[str, str, tuple[int, ...], int]]:
    """(name, dtype, shape, nbytes) of a safetensors file in data order."""
    raw = path.read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    h = json.loads(raw[8 : 8 + n])
    h.pop("__metadata__", None)
    items = sorted(h.items(), key=lambda kv: kv[1]["data_offsets"][0])
    return [(k, v["dtype"], tuple(v["shape"]), v["data_offsets"][1] - v["data_offsets"][0]) for k, v in items]


# ---------------------------------------------------------------------------- published counts
def test_every_shipped_config_is_checked():
    assert sorted(PUBLISHED) == shipped_configs()


@pytest.mark.parametrize("arch", sorted(PUBLISHED))
def test_parameter_counts_match_published_figures(arch):
    model = plan_base(arch).models[0]
    exact, published = PUBLISHED[arch]
    assert model.num_parameters == exact
    assert abs(exact - published) / published < 0.005  # rounds to the published figure
    # bytes are exact too: parameters and buffers at their dtype widths
    assert model.nbytes == sum(t.numel * {"F32": 4, "F16": 2, "I64": 8}[t.dtype] for t in model.tensors)


def test_bert_model_and_pretraining_variants():
    assert plan_base("bert-base-uncased", architecture="BertModel").models[0].num_parameters == 109_482_240
    # the published checkpoint holds BertForPreTraining weights: the famous "110M"
    assert plan_base("bert-base-uncased", architecture="BertForPreTraining").models[0].num_parameters == 110_106_428


def test_dtype_override_halves_float_bytes_only():
    f32 = plan_base("resnet-50").models[0]
    f16 = plan_base("resnet-50", dtype="float16").models[0]
    ints = sum(t.nbytes for t in f32.tensors if t.dtype == "I64")  # num_batches_tracked stays int64
    assert ints == 8 * 53
    assert f16.nbytes - ints == (f32.nbytes - ints) // 2
    assert plan_base("llama-2-7b").models[0].nbytes == 2 * 6_738_415_616  # float16 from its config


# ---------------------------------------------------------------------------- vs save_pretrained
TINY = {
    "bert": (
        "BertForMaskedLM",
        dict(
            model_type="bert",
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            vocab_size=99,
        ),
    ),
    "gpt2": ("GPT2LMHeadModel", dict(model_type="gpt2", n_embd=32, n_layer=2, n_head=2, vocab_size=99, n_positions=64)),
    "llama": (
        "LlamaForCausalLM",
        dict(
            model_type="llama",
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            vocab_size=99,
        ),
    ),
    "llama-tied": (
        "LlamaForCausalLM",
        dict(
            model_type="llama",
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            vocab_size=99,
            tie_word_embeddings=True,
        ),
    ),
    "vit": (
        "ViTForImageClassification",
        dict(
            model_type="vit",
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            image_size=32,
            patch_size=8,
            num_labels=5,
        ),
    ),
    "resnet": (
        "ResNetForImageClassification",
        dict(model_type="resnet", embedding_size=8, hidden_sizes=[16, 32, 48, 64], depths=[1, 2, 1, 1], num_labels=5),
    ),
}


def write_config(tmp_path: Path, arch: str, fields: dict, name: str = "tiny") -> Path:
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps({**fields, "architectures": [arch]}))
    return path


@pytest.mark.parametrize("family", sorted(TINY))
@pytest.mark.parametrize("dtype", [None, "bfloat16"])
def test_plan_equals_real_save_pretrained(tmp_path, family, dtype):
    import transformers

    arch, fields = TINY[family]
    cfg_path = write_config(tmp_path, arch, fields)
    torch.manual_seed(0)
    config, _ = load_config(cfg_path)
    model = getattr(transformers, arch)(config)
    if dtype:
        model = model.to(getattr(torch, dtype))
    model.save_pretrained(tmp_path / "saved")
    real = header(tmp_path / "saved" / "model.safetensors")
    planned = plan_base(cfg_path, dtype=dtype).models[0]
    # same tensors, dtypes, shapes, sizes and order as the written file
    assert [(t.name, t.dtype, t.shape, t.nbytes) for t in planned.tensors] == real
    assert planned.nbytes == sum(r[3] for r in real)
    assert planned.num_parameters == sum(p.numel() for p in model.parameters())


def test_tied_and_buffer_rules_are_visible(tmp_path):
    gpt2 = plan_base(write_config(tmp_path, *TINY["gpt2"])).models[0]
    names = {t.name for t in gpt2.tensors}
    assert "transformer.wte.weight" in names and "lm_head.weight" not in names  # tied, written once
    resnet = plan_base(write_config(tmp_path, *TINY["resnet"], name="r")).models[0]
    buffers = [t for t in resnet.tensors if not t.is_param]
    assert buffers and all(
        t.name.rsplit(".", 1)[1] in {"running_mean", "running_var", "num_batches_tracked"} for t in buffers
    )


# ---------------------------------------------------------------------------- spec: fine-tunes and adapters
def tiny_spec(tmp_path: Path, families: list[dict]) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump({"families": families}))
    return path


def test_finetune_keeps_base_ids_of_frozen_blocks_only(tmp_path):
    cfg = write_config(tmp_path, *TINY["llama"])
    spec = tiny_spec(
        tmp_path,
        [
            {
                "name": "base",
                "arch": cfg.name,
                "finetunes": [{"name": "ft", "frozen_blocks": 1, "count": 2}, {"name": "full", "frozen_blocks": 0}],
            }
        ],
    )
    plan = plan_spec(spec)
    base, ft0, ft1, full = (plan.model(n) for n in ("base", "ft-0", "ft-1", "full"))
    base_ids = {t.name: t.pb for t in base.tensors}
    for t in ft0.tensors:
        frozen = t.name.startswith("model.layers.0.") or t.name == "model.embed_tokens.weight"
        assert (t.pb == base_ids[t.name]) == frozen, t.name
    assert ft0.kind == "partial-finetune" and full.kind == "full-finetune"
    assert not {t.pb for t in full.tensors} & set(base_ids.values())
    # two fine-tunes share exactly the frozen part
    lib = plan.to_library("layer")
    idx = {m.name: set(m.pbs) for m in lib.models}
    sizes = {p.id: p.bytes for p in lib.pbs}
    shared = idx["ft-0"] & idx["ft-1"]
    assert shared == idx["ft-0"] & idx["base"]
    frozen_bytes = sum(t.nbytes for t in ft0.tensors if t.pb == base_ids[t.name])
    assert sum(sizes[p] for p in shared) == frozen_bytes
    assert {p.label for p in lib.pbs if p.id in shared} == {"embeddings", "block:model.layers.0"}


def test_lora_plan_equals_real_peft_save(tmp_path):
    import transformers
    from peft import LoraConfig, get_peft_model

    cases = [
        ("bert", "BertForSequenceClassification", {"num_labels": 3}, ["query", "value"], ["classifier"]),
        ("gpt2", "GPT2LMHeadModel", {}, ["c_attn"], []),  # Conv1D
        ("vit", "ViTForImageClassification", {}, ["q_proj", "v_proj"], ["classifier"]),
        ("resnet", "ResNetForImageClassification", {}, ["convolution"], ["classifier"]),  # Conv2d
    ]
    for family, architecture, overrides, targets, to_save in cases:
        base_arch, fields = TINY[family]
        cfg = write_config(tmp_path, base_arch, fields, name=family)
        spec = tiny_spec(
            tmp_path,
            [
                {
                    "name": family,
                    "arch": cfg.name,
                    # a BERT checkpoint holds the pre-training heads and the pooler a classifier reuses
                    **({"architecture": "BertForPreTraining"} if family == "bert" else {}),
                    "adapters": [
                        {
                            "name": "ad",
                            "r": 4,
                            "target_modules": targets,
                            "modules_to_save": to_save,
                            "architecture": architecture,
                            "config": overrides,
                        }
                    ],
                }
            ],
        )
        planned = plan_spec(spec).model("ad")
        config, _ = load_config(cfg, overrides=overrides)
        torch.manual_seed(0)
        peft_model = get_peft_model(
            getattr(transformers, architecture)(config),
            # GPT-2's Conv1D stores weights transposed: say so (peft would warn and set it itself)
            LoraConfig(r=4, target_modules=targets, modules_to_save=to_save or None, fan_in_fan_out=family == "gpt2"),
        )
        out = tmp_path / f"peft-{family}"
        peft_model.save_pretrained(out)
        assert [(t.name, t.dtype, t.shape, t.nbytes) for t in planned.tensors] == header(
            out / "adapter_model.safetensors"
        ), family
        assert planned.kind == "adapter" and planned.base == family


def test_adapter_needs_its_base(tmp_path):
    cfg = write_config(tmp_path, *TINY["llama"])
    spec = tiny_spec(
        tmp_path,
        [
            {
                "name": "base",
                "arch": cfg.name,
                "adapters": [
                    {"name": "lora", "r": 2, "target_modules": ["q_proj", "v_proj"], "count": 2},
                    {
                        "name": "cls",
                        "r": 2,
                        "target_modules": ["q_proj"],
                        "modules_to_save": ["score"],
                        "architecture": "LlamaForSequenceClassification",
                        "config": {"num_labels": 2},
                    },
                ],
            }
        ],
    )
    plan = plan_spec(spec)
    lib = plan.to_library("tensor")
    by = {m.name: m for m in lib.models}
    base_pbs = set(by["base"].pbs)
    assert base_pbs < set(by["lora-0"].pbs)
    own = set(by["lora-0"].pbs) - base_pbs
    assert len(own) == 2 * 2 * 2  # 2 layers x (q, v) x (A, B)
    assert not own & set(by["lora-1"].pbs)
    # the classifier adapter needs the body, not the LM head, and saves its score head
    cls = plan.model("cls")
    assert "lm_head.weight" not in {t.name for t in cls.base_tensors}
    assert "base_model.model.score.weight" in {t.name for t in cls.tensors}
    assert all(t.dtype == "F32" for t in cls.tensors if "lora_" in t.name)
    # at layer granularity an adapter receives its base's very layer PBs, minus unused heads
    layer = {m.name: m for m in plan.to_library("layer").models}
    assert set(layer["base"].pbs) < set(layer["lora-0"].pbs)
    assert len(set(layer["base"].pbs) - set(layer["cls"].pbs)) == 1  # lm_head's group


def test_spec_errors_are_one_line(tmp_path):
    cfg = write_config(tmp_path, *TINY["llama"])
    cases = [
        (
            {"name": "b", "arch": cfg.name, "finetunes": [{"name": "f", "frozen_blocks": 3}]},
            "frozen_blocks 3 is not in 0..2",
        ),
        ({"name": "b", "arch": cfg.name, "adapters": [{"name": "a", "target_modules": ["nope"]}]}, "match no Linear"),
        (
            {
                "name": "b",
                "arch": cfg.name,
                "adapters": [
                    {"name": "a", "target_modules": ["q_proj"], "architecture": "LlamaForSequenceClassification"}
                ],
            },
            "neither the base checkpoint nor modules_to_save",
        ),
        ({"name": "b", "arch": cfg.name, "finetunes": [{"name": "f", "frozn": 1}]}, "unknown key"),
        ({"name": "b", "arch": "missing.json"}, "no such config file"),
    ]
    for family, message in cases:
        with pytest.raises(PlanError, match=message) as info:
            plan_spec(tiny_spec(tmp_path, [family]))
        assert "\n" not in str(info.value)
    bad = tmp_path / "bad.json"
    bad.write_text('{"model_type": "no-such-model"}')
    with pytest.raises(PlanError, match="bad.json: model_type 'no-such-model'"):
        plan_base(bad)


def test_shipped_llama_spec_lora_sizes():
    plan = plan_spec(SPECS / "llama-2-lora.yaml")
    # PEFT's printed trainable-parameter figures for Llama-2-7B
    assert plan.model("llama-2-7b-lora-r8-qv-0").num_parameters == 4_194_304
    assert plan.model("llama-2-7b-lora-r64-all-0").num_parameters == 159_907_840
    lib = plan.to_library("layer")
    assert lib.source["kind"] == "plan"
    sizes = {m.name: b for m, b in zip(lib.models, lib.model_bytes())}
    # an adapter needs its whole base plus its own float32 A/B matrices
    assert sizes["llama-2-7b-lora-r8-qv-0"] == 13_476_831_232 + 4 * 4_194_304


def test_every_shipped_spec_plans(tmp_path):
    for spec in sorted(SPECS.glob("*.yaml")):
        if spec.name == "llama-2-lora.yaml":
            continue  # covered above
        lib = plan_spec(spec).to_library("tensor")
        assert lib.sharing()["dedup_ratio"] > 1.5, spec.name


# ---------------------------------------------------------------------------- hub and CLI
def test_plan_from_hub_offline_is_a_clear_error(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(PlanError, match="offline mode is enabled") as info:
        plan_from_hub("openai-community/gpt2")
    assert "\n" not in str(info.value)


def test_plan_from_real_safetensors_headers():
    """The headers path on the bundled file's real header, in the hub's own metadata types."""
    from huggingface_hub.utils._safetensors import SafetensorsFileMetadata, SafetensorsRepoMetadata, TensorInfo

    from pbkit.zoo.bundled import bundled_model_dir

    path = bundled_model_dir() / "model.safetensors"
    rows = header(path)
    raw = path.read_bytes()
    h = json.loads(raw[8 : 8 + struct.unpack("<Q", raw[:8])[0]])
    h.pop("__metadata__", None)
    infos = {
        k: TensorInfo(dtype=v["dtype"], shape=v["shape"], data_offsets=tuple(v["data_offsets"])) for k, v in h.items()
    }
    meta = SafetensorsRepoMetadata(
        metadata=None,
        sharded=False,
        weight_map={k: "model.safetensors" for k in h},
        files_metadata={"model.safetensors": SafetensorsFileMetadata(metadata={}, tensors=infos)},
    )
    model = plan_from_metadata(meta, "sentence-transformers/all-MiniLM-L6-v2").models[0]
    assert [(t.name, t.dtype, t.shape, t.nbytes) for t in model.tensors] == rows
    assert model.nbytes == path.stat().st_size - 8 - struct.unpack("<Q", raw[:8])[0]


def test_cli_writes_valid_libraries(tmp_path, capsys):
    out = tmp_path / "lib.json"
    assert cli_main(["plan", "--arch", "gpt2-xl", "--dtype", "float16", "--out", str(out)]) == 0
    lib = load_library(out)
    assert lib.models[0].name == "gpt2-xl" and int(lib.model_bytes()[0]) == 2 * 1_557_611_200
    assert lib.granularity == "tensor" and lib.source["kind"] == "plan"

    cfg = write_config(tmp_path, *TINY["gpt2"])
    spec = tiny_spec(
        tmp_path,
        [
            {
                "name": "g",
                "arch": cfg.name,
                "finetunes": [{"name": "f", "frozen_blocks": 1}],
                "adapters": [{"name": "a", "r": 2, "target_modules": ["c_attn"]}],
            }
        ],
    )
    out2 = tmp_path / "fixed.json"
    assert (
        cli_main(["plan", "--spec", str(spec), "--granularity", "fixed", "--max-bytes", "8KiB", "--out", str(out2)])
        == 0
    )
    lib2 = load_library(out2)
    assert lib2.granularity == "fixed" and max(p.bytes for p in lib2.pbs) <= 8192
    assert [m.kind for m in lib2.models] == ["base", "partial-finetune", "adapter"]
    assert json.loads(out2.read_text())["source"]["max_bytes"] == 8192


def test_cli_errors_exit_2_with_one_line(tmp_path, capsys):
    bad = tmp_path / "broken.json"
    bad.write_text("{not json")
    assert cli_main(["plan", "--arch", str(bad), "--out", str(tmp_path / "x.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("pbkit: error:") and "broken.json" in err and "\n" not in err
    assert cli_main(["plan", "--arch", "gpt2", "--granularity", "fixed", "--out", str(tmp_path / "x.json")]) == 2
    assert "needs --max-bytes" in capsys.readouterr().err
    assert cli_main(["plan", "--out", str(tmp_path / "x.json")]) == 2


def test_spec_max_shard_size_takes_every_size_form(tmp_path):
    cfg = write_config(tmp_path, *TINY["gpt2"])
    files = {}
    for size in ("64MiB", "67108864", "20kB"):
        spec = tiny_spec(tmp_path, [{"name": "g", "arch": cfg.name, "max_shard_size": size}])
        files[size] = {t.file for t in plan_spec(spec).model("g").tensors}
    assert files["64MiB"] == files["67108864"] == {"model.safetensors"}
    assert len(files["20kB"]) > 1  # a tiny GPT-2 is > 20 kB: sharded
    spec = tiny_spec(tmp_path, [{"name": "g", "arch": cfg.name, "max_shard_size": "64XB"}])
    with pytest.raises(PlanError, match=r"families\[0\]: max_shard_size '64XB': not a size"):
        plan_spec(spec)


def test_plan_spec_levels_are_settings_with_one_line_errors(tmp_path):
    """Each level of a plan spec is a dataclass of the one loader: the file, the entry and the key."""
    from pbkit.library.plan import load_spec

    cfg = write_config(tmp_path, *TINY["llama"])
    cases = [
        ([{"name": "b"}], r"families\[0\]: missing key 'arch'"),
        ([{"name": "b", "arch": cfg.name, "finetunes": [{"name": "f", "frozen_blocks": "two"}]}], "frozen_blocks"),
        ([{"name": "b", "arch": cfg.name, "adapters": [{"name": "a", "r": 4, "rank": 4}]}], "unknown key 'rank'"),
        ([{"name": "b", "arch": cfg.name, "colour": 1}], r"families\[0\]: unknown key 'colour'"),
    ]
    for families, message in cases:
        with pytest.raises(PlanError, match=message) as info:
            plan_spec(tiny_spec(tmp_path, families))
        assert str(info.value).startswith(str(tmp_path / "spec.yaml")) and "\n" not in str(info.value)
    spec = load_spec(tiny_spec(tmp_path, [{"name": "b", "arch": cfg.name, "max_shard_size": "64MiB"}]))
    assert spec.families[0].max_shard_size == "64MiB"


def test_zoo_and_plan_specs_share_one_vocabulary():
    import dataclasses

    from pbkit.library.plan import PlanAdapter, PlanFamily, PlanFinetune
    from pbkit.zoo import spec as zoo

    def names(cls):
        return {f.name for f in dataclasses.fields(cls)}

    assert {"finetunes", "adapters"} <= names(PlanFamily) & names(zoo.FamilySpec)
    assert "frozen_blocks" in names(PlanFinetune) & names(zoo.FinetuneEntrySpec)
    assert "type" in names(PlanAdapter) & names(zoo.AdapterEntrySpec)
