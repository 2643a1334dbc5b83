"""atheris target: the settings reader (pbkit/common/settings.py read_settings) on mutated real YAML/TOML settings files, read as YAML, JSON or TOML.

    .venv/bin/python fuzz/fuzz_settings.py -atheris_runs=200000        # or any libFuzzer flags
Only PbkitError may escape the reader; anything else, or one input over 1 s, is a crash.
See fuzz/README.md."""

import sys

import atheris

with atheris.instrument_imports(include=["pbkit", "yaml", "tomllib"]):
    import fuzz_harness

if __name__ == "__main__":
    fuzz_harness.main("settings", sys.argv)
