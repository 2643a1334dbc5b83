"""Tensor dtypes, once: the safetensors codes, their widths, and the torch names they map to.

Every other module (the safetensors reader, the legacy pickle reader, the plan, the dedup
report, the zoo spec) takes its dtype facts from here. No torch here: the core reads
checkpoints without it.
"""

from __future__ import annotations

# Bits per element of every dtype in safetensors 0.8's `Dtype` enum (safetensors/src/tensor.rs).
# Sub-byte types (F4, F6_*) are packed; a tensor of them must fill whole bytes, as safetensors
# itself requires (numel * bits % 8 == 0).
DTYPE_BITS: dict[str, int] = {
    "BOOL": 8,
    "F4": 4,
    "F6_E2M3": 6,
    "F6_E3M2": 6,
    "U8": 8,
    "I8": 8,
    "F8_E5M2": 8,
    "F8_E4M3": 8,
    "F8_E8M0": 8,
    "F8_E4M3FNUZ": 8,
    "F8_E5M2FNUZ": 8,
    "I16": 16,
    "U16": 16,
    "F16": 16,
    "BF16": 16,
    "I32": 32,
    "U32": 32,
    "F32": 32,
    "C64": 64,
    "F64": 64,
    "I64": 64,
    "U64": 64,
}

# Bytes per element for the byte-aligned dtypes. Sub-byte dtypes have no whole-byte size: use
# `tensor_nbytes` (or an entry's `end - begin`) rather than numel * DTYPE_SIZES[dtype].
DTYPE_SIZES: dict[str, int] = {k: v // 8 for k, v in DTYPE_BITS.items() if v % 8 == 0}

# torch dtype name (`str(torch.float16)` without "torch.") -> safetensors code: what a checkpoint
# header, a recipe and a plan carry, so PB ids of a tensor read from a .bin equal those of the
# same tensor read from a .safetensors file.
TORCH_TO_ST: dict[str, str] = {
    "float64": "F64",
    "float32": "F32",
    "float16": "F16",
    "bfloat16": "BF16",
    "int64": "I64",
    "int32": "I32",
    "int16": "I16",
    "int8": "I8",
    "uint8": "U8",
    "uint16": "U16",
    "uint32": "U32",
    "uint64": "U64",
    "bool": "BOOL",
    "complex64": "C64",
    "float8_e4m3fn": "F8_E4M3",
    "float8_e5m2": "F8_E5M2",
    "float8_e4m3fnuz": "F8_E4M3FNUZ",
    "float8_e5m2fnuz": "F8_E5M2FNUZ",
    "float8_e8m0fnu": "F8_E8M0",
}
ST_TO_TORCH: dict[str, str] = {st: name for name, st in TORCH_TO_ST.items()}

# Floating codes a tensor can be cast between without leaving IEEE-like floats (the dedup
# report's "recoverable by cast"), and the float dtypes a plan or a zoo entry may be cast to.
FLOAT_CODES: tuple[str, ...] = ("F64", "F32", "F16", "BF16")
CAST_DTYPES: tuple[str, ...] = ("float32", "float16", "bfloat16")


def st_code(torch_name: str) -> str:
    """The safetensors code of a torch dtype name ("float16" or "torch.float16").

    Raises:
        KeyError: safetensors has no code for it.
    """
    return TORCH_TO_ST[torch_name.removeprefix("torch.")]


__all__ = [
    "CAST_DTYPES",
    "DTYPE_BITS",
    "DTYPE_SIZES",
    "FLOAT_CODES",
    "ST_TO_TORCH",
    "TORCH_TO_ST",
    "st_code",
]
