"""PB granularity for caching experiments: one PB per tensor, per layer, or per fixed-size chunk.

The store's unit is always one tensor. A caching experiment may instead treat a transformer
block, an embedding table, or a fixed-size slice of the checkpoint as its unit; this module
maps a model's tensors (in checkpoint order) to such grouped PBs.

A grouped PB's id is derived only from its members' PB ids (and byte ranges), which are content
digests independent of tensor names, so two models share a grouped PB exactly when every member
tensor is identical and grouped the same way. The rules are documented in docs/grouping.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence

import blake3

from pbkit.errors import PbkitError

GRANULARITIES = ("tensor", "layer", "fixed")

# Domain separation so a group digest can never collide with a tensor digest by construction.
_GROUP_DOMAIN = b"pbkit-group-v1\n"

# Wrappers that PEFT puts in front of the base model's own names.
_PEFT_PREFIXES = ("base_model.model.",)

# Module-list names whose `<name>.<i>.` prefix is one repeated block (transformer layer, ResNet
# bottleneck, ...). The first such pair in a name wins, so `stages.0.layers.1.layer.0.conv`
# belongs to the block `stages.0.layers.1`.
BLOCK_CONTAINERS = frozenset({"layer", "layers", "h", "block", "blocks", "resblocks"})

# Segments that mark an embedding (token, position, type, patch or conv stem).
_EMBED_EXACT = frozenset({"wte", "wpe", "shared", "embed_in", "embedder", "cls_token", "pos_embed"})

# Segments that mark a task head (LM head, classifier, MLM head, QA span head, ...).
_HEAD_SEGMENTS = frozenset(
    {
        "lm_head",
        "classifier",
        "pre_classifier",
        "score",
        "cls",
        "head",
        "heads",
        "qa_outputs",
        "embed_out",
        "output_projection",
        "vocab_transform",
        "vocab_layer_norm",
        "vocab_projector",
    }
)

# Module names that are a final normalisation when they are not inside a block.
_FINAL_NORM_EXACT = frozenset({"ln_f", "ln_post", "ln_final", "norm_f"})


class GroupingError(PbkitError, ValueError):
    """A grouping request is invalid (unknown granularity, bad max_bytes)."""


class TensorLike(Protocol):
    """What grouping needs of a tensor: the store's `TensorRef` and a plan's tensors both fit."""

    @property
    def name(self) -> str: ...
    @property
    def dtype(self) -> str: ...
    @property
    def shape(self) -> tuple[int, ...]: ...
    @property
    def pb(self) -> str: ...
    @property
    def nbytes(self) -> int: ...


@dataclass(frozen=True)
class GroupedPB:
    """One PB at the chosen granularity.

    `members` are the member PB ids in order; a slice of a tensor is written `pb[start:end]`
    (byte offsets into the tensor's raw bytes). `tensors` are the member tensor names in the
    same order (with the same `[start:end]` suffix for slices).
    """

    id: str
    bytes: int
    label: str
    members: tuple[str, ...]
    tensors: tuple[str, ...]


@dataclass(frozen=True)
class LayerKey:
    """Which layer group a tensor belongs to: a kind and, for blocks/others, a module path."""

    kind: str  # "embeddings" | "block" | "final_norm" | "pooler" | "head" | "other"
    path: str = ""

    @property
    def label(self) -> str:
        return f"{self.kind}:{self.path}" if self.path else self.kind


def strip_peft_prefix(name: str) -> str:
    for prefix in _PEFT_PREFIXES:
        if name.startswith(prefix):
            return name[len(prefix) :]
    return name


def layer_key(name: str) -> LayerKey:
    """Classify a checkpoint tensor name into its layer group (rules in docs/grouping.md).

    Order of the rules: block, then head, pooler, embeddings, final norm, and otherwise the
    tensor's own module path. Blocks come first so a per-layer norm or embedding-like name
    inside a block stays in its block; heads come before embeddings so an MLM head's decoder
    stays with the head.
    """
    segments = strip_peft_prefix(name).split(".")
    # A block is `<container>.<index>` with at least one segment after it (the parameter).
    for i in range(len(segments) - 2):
        if segments[i] in BLOCK_CONTAINERS and segments[i + 1].isdigit():
            return LayerKey("block", ".".join(segments[: i + 2]))
    modules = segments[:-1]  # drop the parameter/buffer name itself
    lowered = [s.lower() for s in modules]
    if any(s in _HEAD_SEGMENTS for s in modules):
        return LayerKey("head")
    if "pooler" in lowered:
        return LayerKey("pooler")
    if any(s in _EMBED_EXACT or "embed" in s for s in lowered):
        return LayerKey("embeddings")
    if modules and (lowered[-1] in _FINAL_NORM_EXACT or "norm" in lowered[-1]):
        return LayerKey("final_norm")
    return LayerKey("other", ".".join(modules))


def parse_member(member: str) -> tuple[str, int | None, int | None]:
    """Split a member string into (pb id, start, end); start/end are None for a whole tensor."""
    if member.endswith("]") and "[" in member:
        pb, _, rng = member[:-1].rpartition("[")
        start, _, end = rng.partition(":")
        return pb, int(start), int(end)
    return member, None, None


def group_id(members: Sequence[str]) -> str:
    """Id of a grouped PB: the member PB id itself for one whole tensor, else BLAKE3 over the
    members in order (ranges included), so only identical member lists share an id."""
    if len(members) == 1 and parse_member(members[0])[1] is None:
        return members[0]
    digest = blake3.blake3(_GROUP_DOMAIN)
    digest.update("\n".join(members).encode("utf-8"))
    return digest.hexdigest()


def _make(label: str, members: list[str], names: list[str], nbytes: int) -> GroupedPB:
    return GroupedPB(
        id=group_id(members),
        bytes=nbytes,
        label=label,
        members=tuple(members),
        tensors=tuple(names),
    )


def _by_tensor(tensors: Sequence[TensorLike]) -> list[GroupedPB]:
    return [_make(t.name, [t.pb], [t.name], int(t.nbytes)) for t in tensors]


def _by_layer(tensors: Sequence[TensorLike]) -> list[GroupedPB]:
    # Groups in order of first appearance; members keep checkpoint order within a group.
    groups: dict[LayerKey, list[TensorLike]] = {}
    for t in tensors:
        groups.setdefault(layer_key(t.name), []).append(t)
    return [
        _make(key.label, [t.pb for t in ts], [t.name for t in ts], sum(int(t.nbytes) for t in ts))
        for key, ts in groups.items()
    ]


def _by_fixed(tensors: Sequence[TensorLike], max_bytes: int) -> list[GroupedPB]:
    out: list[GroupedPB] = []
    members: list[str] = []
    names: list[str] = []
    size = 0

    def close() -> None:
        nonlocal members, names, size
        if members:
            out.append(_make(f"fixed:{len(out)}", members, names, size))
        members, names, size = [], [], 0

    for t in tensors:
        n = int(t.nbytes)
        if n > max_bytes:
            # A large tensor starts at a group boundary so its slices are identical in every
            # model that holds it, whatever precedes it in the checkpoint.
            close()
            for start in range(0, n, max_bytes):
                end = min(start + max_bytes, n)
                out.append(
                    _make(f"fixed:{len(out)}", [f"{t.pb}[{start}:{end}]"], [f"{t.name}[{start}:{end}]"], end - start)
                )
            continue
        if size + n > max_bytes:
            close()
        members.append(t.pb)
        names.append(t.name)
        size += n
    close()
    return out


def group_tensors(tensors: Sequence[TensorLike], granularity: str, max_bytes: int | None = None) -> list[GroupedPB]:
    """Group one model's tensors (in checkpoint order) into PBs at `granularity`.

    `max_bytes` is required for `fixed` and rejected for the others. The result may list the
    same id twice when a model holds identical content twice (e.g. two all-zero biases of one
    shape); a library's model entry should keep each id once.
    """
    if granularity not in GRANULARITIES:
        raise GroupingError(f"granularity {granularity!r} is not one of {', '.join(GRANULARITIES)}")
    if granularity == "fixed":
        if max_bytes is None or isinstance(max_bytes, bool) or int(max_bytes) <= 0:
            raise GroupingError(f"fixed granularity needs max_bytes > 0, got {max_bytes!r}")
        return _by_fixed(tensors, int(max_bytes))
    if max_bytes is not None:
        raise GroupingError(f"max_bytes={max_bytes} applies only to fixed granularity, not {granularity!r}")
    if granularity == "tensor":
        return _by_tensor(tensors)
    return _by_layer(tensors)
