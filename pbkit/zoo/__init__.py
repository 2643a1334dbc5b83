"""Model zoos: build real fine-tune/adapter families from a spec (`spec`, `builder`, `finetune`),
the bundled base model (`bundled`, packaged specs in `specs/`), and the dedup report (`scan`, `report`;
docs/zoo.md, docs/dedup-report.md)."""
