"""atheris target: the recipe parser (pbkit/store/recipe.py Recipe.from_json) on mutated real recipes.

    .venv/bin/python fuzz/fuzz_recipe.py -atheris_runs=200000        # or any libFuzzer flags
Only PbkitError may escape the reader; anything else, or one input over 1 s, is a crash.
See fuzz/README.md."""

import sys

import atheris

with atheris.instrument_imports(include=["pbkit"]):
    import fuzz_harness

if __name__ == "__main__":
    fuzz_harness.main("recipe", sys.argv)
