"""What "the reader survived this input" means, for the hypothesis tests (tests/fuzz/) and the
atheris targets (fuzz/fuzz_*.py) alike.

Each `check_*` feeds one input to one reader through the same entry point a user's file takes,
lets only `PbkitError` (the project's one-line errors) escape as "rejected", and on acceptance
checks what the accepted value promises (a safetensors layout tiles the file, a recipe
re-serialises to its own id, a library's derived views work). Any other exception, or one input
taking over `TIME_LIMIT_S`, is a bug.
"""

from __future__ import annotations

import gc
import os
import time
from pathlib import Path

from pbkit.common.settings import read_settings
from pbkit.errors import PbkitError
from pbkit.library import PBLibrary, load_library
from pbkit.model.safetensors_layout import read_layout
from pbkit.store.recipe import Recipe

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "tests" / "fuzz" / "data"
# Real inputs the mutations start from (see tests/fuzz/data/README.md for where each comes from).
MINILM_HEADER = DATA / "minilm-model.safetensors.header"
MINILM_DATA_BYTES = 90_856_960  # data section of the bundled model.safetensors after that header
RECIPES = (DATA / "recipe-minilm-base.json", DATA / "recipe-minilm-lora.json")
LIBRARY = DATA / "library-zoo-subset.json"
SETTINGS = tuple(
    REPO / p
    for p in (
        "delivery/scenarios/default.yaml",
        "delivery/scenarios/small.yaml",
        "learning/configs/quick.yaml",
        "pbkit/zoo/specs/default.yaml",
        "pbkit/library/plans/specs/llama-2-lora.yaml",
        "pyproject.toml",
    )
)
TIME_LIMIT_S = 5.0  # a correctness bound per input (a reader must not hang), not a speed target; inputs take ms
# CPU seconds of the calling thread, not wall time nor the whole process's CPU: a hanging reader
# burns this thread's CPU, while a loaded machine stretches wall time and other threads of the test
# process (thread pools and servers left by earlier tests) add process CPU, without any bug (a CI
# run charged one recipe 3.4 s of process CPU; the whole 1 000-input test takes 4 s alone).


class FuzzSettingsError(PbkitError):
    """The error class the settings reader is asked to raise (callers pass their own)."""


class TooSlow(AssertionError):
    pass


def _rejected(exc: PbkitError) -> bool:
    """A rejection must be a one-line message (it is printed as `pbkit: error: <message>`)."""
    assert str(exc) and "\n" not in str(exc) and "\r" not in str(exc), f"not a one-line error: {str(exc)[:300]!r}"
    return False


def _timed(fn, *args):
    # The cyclic garbage collector is paused for the call: a full collection of everything earlier
    # tests left in the process (torch, transformers, Ray) costs over a second of this thread's CPU
    # and charged it to whichever input was running (1.6 s for one settings file in a CI run).
    # Reference counting still frees the reader's own objects.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    t0 = time.thread_time()
    try:
        return fn(*args)
    finally:
        dt = time.thread_time() - t0
        if gc_was_enabled:
            gc.enable()
        if dt > TIME_LIMIT_S:
            raise TooSlow(f"one input took {dt:.2f} s of CPU (limit {TIME_LIMIT_S} s)")


def write_sparse(path: Path, head: bytes, total_size: int) -> None:
    """`head` followed by zeros up to `total_size` bytes (a hole: no data blocks are written)."""
    with open(path, "wb") as f:
        f.write(head)
        f.truncate(max(total_size, len(head)))


def check_safetensors(path: Path, head: bytes, total_size: int) -> bool:
    """Write a (sparse) file and read its layout; True if accepted. Accepted layouts must tile it."""
    write_sparse(path, head, total_size)
    size = os.path.getsize(path)
    try:
        layout = _timed(read_layout, path)
    except PbkitError as exc:
        return _rejected(exc)
    assert layout.file_size == size
    assert layout.header == head[: layout.data_start]
    cursor = layout.data_start
    for t in layout.tensors:
        assert t.begin == cursor and t.end >= t.begin
        cursor = t.end
    assert cursor == size
    return True


def check_recipe(data: bytes) -> bool:
    """Parse a recipe; True if accepted. An accepted recipe lists its blocks and round-trips."""
    try:
        recipe = _timed(Recipe.from_json, data, "fuzz-recipe")
    except PbkitError as exc:
        return _rejected(exc)
    blocks = recipe.blocks()
    assert all(b.nbytes >= 0 for b in blocks.values())
    again = Recipe.from_json(recipe.canonical_json())
    assert again.id == recipe.id and again == recipe
    return True


def check_library(path: Path, data: bytes) -> bool:
    """Load a library file; True if accepted. Accepted libraries give their derived views."""
    path.write_bytes(data)
    try:
        lib = _timed(load_library, path)
    except PbkitError as exc:
        return _rejected(exc)
    lib.membership()
    lib.sharing()
    again = PBLibrary.from_dict(lib.to_dict())
    assert again.pb_ids == lib.pb_ids and again.model_names == lib.model_names
    return True


def check_settings(path: Path, data: bytes) -> bool:
    """Read a settings file (type from `path`'s suffix); True if accepted (a mapping)."""
    path.write_bytes(data)
    try:
        value = _timed(read_settings, path, FuzzSettingsError)
    except PbkitError as exc:
        assert isinstance(exc, FuzzSettingsError), f"raised {type(exc).__name__}, not the caller's class"
        return _rejected(exc)
    assert isinstance(value, dict)
    return True


# ---------------------------------------------------------------------------- atheris entry points
# Each fuzz/fuzz_<reader>.py turns atheris' bytes into one check_* call. The first input byte
# picks a variant (data-section size, file suffix); the rest is the file. Seeds are the real inputs.
SIZE_DELTAS = (0, 0, 0, 0, -1, 1, -2, 8, -4096, 4096, -MINILM_DATA_BYTES, 2**40)
SETTINGS_SUFFIXES = (".yaml", ".json", ".toml")


def seeds(target: str) -> list[bytes]:
    """The real inputs a target's corpus starts from (with the variant byte in front)."""
    if target == "safetensors":
        return [b"\x00" + MINILM_HEADER.read_bytes()]
    if target == "recipe":
        return [p.read_bytes() for p in RECIPES]
    if target == "library":
        return [LIBRARY.read_bytes()]
    if target == "settings":
        return [
            bytes([SETTINGS_SUFFIXES.index(p.suffix if p.suffix in SETTINGS_SUFFIXES else ".yaml")]) + p.read_bytes()
            for p in SETTINGS
        ]
    raise ValueError(target)


def one_input(target: str, data: bytes, scratch: Path) -> None:
    """Run one atheris input through `target`'s check (exceptions other than PbkitError escape)."""
    if target == "safetensors":
        if data:
            head = data[1:]
            check_safetensors(
                scratch / "f.safetensors", head, len(head) + MINILM_DATA_BYTES + SIZE_DELTAS[data[0] % len(SIZE_DELTAS)]
            )
    elif target == "recipe":
        check_recipe(data)
    elif target == "library":
        check_library(scratch / "lib.json", data)
    elif target == "settings":
        if data:
            check_settings(scratch / f"s{SETTINGS_SUFFIXES[data[0] % 3]}", data[1:])
    else:
        raise ValueError(target)


def main(target: str, argv: list[str]) -> None:
    """`python fuzz/fuzz_<target>.py [libFuzzer flags] [CORPUS_DIR ...]`; see fuzz/README.md."""
    import tempfile

    import atheris

    if not any(not a.startswith("-") for a in argv[1:]):  # no corpus dir given: the default one
        corpus = Path(__file__).resolve().parent / ".corpus" / target
        corpus.mkdir(parents=True, exist_ok=True)
        for i, seed in enumerate(seeds(target)):
            (corpus / f"seed-{i}").write_bytes(seed)
        argv = argv + [str(corpus)]
    if not any(a.startswith("-max_len=") for a in argv):
        argv = argv + [f"-max_len={max(len(s) for s in seeds(target)) * 2}"]
    scratch = Path(tempfile.mkdtemp(prefix=f"pbkit-fuzz-{target}-"))
    atheris.Setup(argv, lambda data: one_input(target, data, scratch))
    atheris.Fuzz()
