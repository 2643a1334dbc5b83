"""Grouping rules on real checkpoint names (bundled MiniLM, GPT-2, Llama, ViT, ResNet, a real PEFT
adapter), fixed-size splitting, and id sharing."""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, replace

import blake3
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors import safe_open

from pbkit.library.grouping import (
    GRANULARITIES,
    GroupingError,
    group_id,
    group_tensors,
    layer_key,
    parse_member,
)
from pbkit.library.plan import build_meta_model, checkpoint_tensors, load_config
from pbkit.zoo.bundled import bundled_model_dir


@dataclass(frozen=True)
class T:
    """A tensor as the store describes it (the TensorRef fields)."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    pb: str
    nbytes: int


def read_tensors(path) -> list[T]:
    """Tensors of a safetensors file in data order, with a content digest as PB id."""
    raw = path.read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8 : 8 + n])
    header.pop("__metadata__", None)
    out = []
    for name, info in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0]):
        start, end = info["data_offsets"]
        data = raw[8 + n + start : 8 + n + end]
        pb = blake3.blake3(f"{info['dtype']}|{info['shape']}|".encode() + data).hexdigest()
        out.append(T(name, info["dtype"], tuple(info["shape"]), pb, end - start))
    return out


@pytest.fixture(scope="module")
def minilm() -> list[T]:
    return read_tensors(bundled_model_dir() / "model.safetensors")


def meta_names(arch: str, architecture: str | None = None) -> list[str]:
    config, _ = load_config(arch)
    return [t.name for t in checkpoint_tensors(build_meta_model(config, architecture))]


# ---------------------------------------------------------------------------- layer rules
def test_layer_groups_on_bundled_minilm(minilm):
    groups = group_tensors(minilm, "layer")
    labels = sorted(g.label for g in groups)
    assert labels == sorted(["embeddings", "pooler"] + [f"block:encoder.layer.{i}" for i in range(6)])
    # every tensor lands in exactly one group and bytes add up
    assert sorted(n for g in groups for n in g.tensors) == sorted(t.name for t in minilm)
    assert sum(g.bytes for g in groups) == sum(t.nbytes for t in minilm)
    emb = next(g for g in groups if g.label == "embeddings")
    assert "embeddings.position_ids" in emb.tensors and "embeddings.word_embeddings.weight" in emb.tensors
    block3 = next(g for g in groups if g.label == "block:encoder.layer.3")
    assert len(block3.tensors) == 16 and all(n.startswith("encoder.layer.3.") for n in block3.tensors)
    # the six blocks have distinct contents, so distinct ids
    assert len({g.id for g in groups}) == len(groups)


@pytest.mark.parametrize(
    "arch, expected",
    [
        ("gpt2", {"embeddings": 2, "final_norm": 2, "block:transformer.h.11": 12}),
        ("llama-2-7b", {"embeddings": 1, "final_norm": 1, "head": 1, "block:model.layers.31": 9}),
        ("vit-base-patch16-224", {"embeddings": 4, "final_norm": 2, "head": 2, "block:vit.encoder.layer.0": 16}),
        ("resnet-50", {"embeddings": 6, "head": 2, "block:resnet.encoder.stages.0.layers.0": 24}),
    ],
)
def test_layer_rules_on_real_architecture_names(arch, expected):
    names = meta_names(arch)
    counts: dict[str, int] = {}
    for n in names:
        label = layer_key(n).label
        counts[label] = counts.get(label, 0) + 1
    for label, count in expected.items():
        assert counts[label] == count, (label, counts)
    assert not any(label.startswith("other") for label in counts), counts


def test_resnet_blocks_are_bottlenecks_not_inner_layers():
    labels = {layer_key(n).label for n in meta_names("resnet-50")}
    blocks = sorted(lbl for lbl in labels if lbl.startswith("block:"))
    assert len(blocks) == 3 + 4 + 6 + 3  # one per bottleneck of ResNet-50
    assert "block:resnet.encoder.stages.2.layers.5" in blocks


def test_layer_rules_on_real_peft_adapter_names(tmp_path):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    cfg = BertConfig(num_hidden_layers=2, hidden_size=32, num_attention_heads=2, intermediate_size=64, vocab_size=64)
    model = get_peft_model(
        BertForSequenceClassification(cfg),
        LoraConfig(r=4, target_modules=["query", "value"], modules_to_save=["classifier"]),
    )
    model.save_pretrained(tmp_path)
    tensors = read_tensors(tmp_path / "adapter_model.safetensors")
    assert all(t.name.startswith("base_model.model.") for t in tensors)
    labels = {g.label: g for g in group_tensors(tensors, "layer")}
    assert set(labels) == {"block:bert.encoder.layer.0", "block:bert.encoder.layer.1", "head"}
    assert len(labels["block:bert.encoder.layer.0"].tensors) == 4  # lora_A/B of query and value
    assert labels["head"].tensors == ("base_model.model.classifier.bias", "base_model.model.classifier.weight")


def test_unknown_names_fall_back_to_their_module_path():
    assert layer_key("logit_scale").label == "other"
    assert layer_key("visual.proj.weight").label == "other:visual.proj"
    assert layer_key("model.layers.3.mlp.up_proj.weight").label == "block:model.layers.3"
    assert layer_key("model.norm.weight").label == "final_norm"


# ---------------------------------------------------------------------------- ids
def test_tensor_granularity_keeps_store_ids(minilm):
    groups = group_tensors(minilm, "tensor")
    assert [g.id for g in groups] == [t.pb for t in minilm]
    assert [g.bytes for g in groups] == [t.nbytes for t in minilm]


def test_identical_groups_share_ids_and_one_changed_member_changes_it(minilm):
    a = group_tensors(minilm, "layer")
    b = group_tensors(list(minilm), "layer")
    assert [g.id for g in a] == [g.id for g in b]
    # change one tensor of block 2: only block 2's id changes
    idx = next(i for i, t in enumerate(minilm) if t.name == "encoder.layer.2.output.dense.bias")
    changed = list(minilm)
    changed[idx] = replace(changed[idx], pb="f" * 64)
    c = group_tensors(changed, "layer")
    diff = [ga.label for ga, gc in zip(a, c) if ga.id != gc.id]
    assert diff == ["block:encoder.layer.2"]
    # the id is a function of member ids only: renaming tensors keeps it
    renamed = [replace(t, name="prefix." + t.name) for t in minilm]
    assert {g.id for g in group_tensors(renamed, "fixed", 1 << 20)} == {
        g.id for g in group_tensors(minilm, "fixed", 1 << 20)
    }


def test_member_order_and_ranges_are_part_of_the_id():
    assert group_id(["a", "b"]) != group_id(["b", "a"])
    assert group_id(["a"]) == "a"
    assert group_id(["a[0:10]"]) != group_id(["a[0:11]"])
    assert parse_member("abc[5:17]") == ("abc", 5, 17)
    assert parse_member("abc") == ("abc", None, None)


# ---------------------------------------------------------------------------- fixed
def test_fixed_groups_split_large_tensors_and_sum(minilm):
    max_bytes = 1 << 20  # word embeddings (46.9 MB) split into 45 slices
    groups = group_tensors(minilm, "fixed", max_bytes)
    assert all(0 < g.bytes <= max_bytes for g in groups)
    assert sum(g.bytes for g in groups) == sum(t.nbytes for t in minilm)
    word = next(t for t in minilm if t.name == "embeddings.word_embeddings.weight")
    slices = [g for g in groups if g.tensors[0].startswith(word.name + "[")]
    assert len(slices) == -(-word.nbytes // max_bytes)
    ranges = [parse_member(g.members[0])[1:] for g in slices]
    assert ranges[0][0] == 0 and ranges[-1][1] == word.nbytes
    assert all(r1[1] == r2[0] for r1, r2 in zip(ranges, ranges[1:]))
    # checkpoint order is kept: flattening the groups gives the tensors in order
    flat = [parse_member(m)[0] for g in groups for m in g.members]
    assert list(dict.fromkeys(flat)) == list(dict.fromkeys(t.pb for t in minilm))


@settings(max_examples=60, deadline=None)
@given(sizes=st.lists(st.integers(0, 5000), min_size=1, max_size=40), max_bytes=st.integers(1, 3000))
def test_fixed_grouping_invariants(sizes, max_bytes):
    tensors = [T(f"t{i}", "U8", (n,), f"pb{i}", n) for i, n in enumerate(sizes)]
    groups = group_tensors(tensors, "fixed", max_bytes)
    assert sum(g.bytes for g in groups) == sum(sizes)
    assert all(g.bytes <= max_bytes for g in groups)
    for g in groups:
        total = 0
        for m in g.members:
            pb, start, end = parse_member(m)
            n = sizes[int(pb[2:])]
            total += n if start is None else end - start
            if start is not None:  # a slice only for a tensor too big for one group
                assert n > max_bytes and len(g.members) == 1
        assert total == g.bytes


def test_bad_requests_are_one_line_errors(minilm):
    with pytest.raises(GroupingError, match="granularity 'block' is not one of"):
        group_tensors(minilm, "block")
    with pytest.raises(GroupingError, match="needs max_bytes > 0"):
        group_tensors(minilm, "fixed")
    with pytest.raises(GroupingError, match="applies only to fixed"):
        group_tensors(minilm, "layer", 100)
    assert GRANULARITIES == ("tensor", "layer", "fixed")


def test_bundled_file_is_read_in_data_order(minilm):
    # the safetensors reader agrees on names and sizes
    with safe_open(bundled_model_dir() / "model.safetensors", "pt") as f:
        assert set(f.keys()) == {t.name for t in minilm}
