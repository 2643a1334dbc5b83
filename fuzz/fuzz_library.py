"""atheris target: the PB library loader (pbkit/library/format.py load_library and its validation) on a mutated real exported library.

    .venv/bin/python fuzz/fuzz_library.py -atheris_runs=200000        # or any libFuzzer flags
Only PbkitError may escape the reader; anything else, or one input over 1 s, is a crash.
See fuzz/README.md."""

import sys

import atheris

with atheris.instrument_imports(include=["pbkit"]):
    import fuzz_harness

if __name__ == "__main__":
    fuzz_harness.main("library", sys.argv)
