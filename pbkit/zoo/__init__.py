"""Model zoos: build real fine-tune/adapter families from a spec, export the PB library from a
store, and measure deduplication schemes side by side (docs/zoo.md, docs/dedup-report.md)."""
