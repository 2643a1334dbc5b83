"""The fuzz tests share their checks with the atheris targets in fuzz/ (fuzz/fuzz_harness.py);
`mutations` and `fuzz_harness` are importable through pytest's `pythonpath` (pyproject.toml)."""
