"""atheris target: the safetensors reader (pbkit/model/safetensors_layout.py read_layout) on mutated copies of the bundled MiniLM header over a sparse data section.

    .venv/bin/python fuzz/fuzz_safetensors.py -atheris_runs=200000        # or any libFuzzer flags
Only PbkitError may escape the reader; anything else, or one input over 1 s, is a crash.
See fuzz/README.md."""

import sys

import atheris

with atheris.instrument_imports(include=["pbkit"]):
    import fuzz_harness

if __name__ == "__main__":
    fuzz_harness.main("safetensors", sys.argv)
