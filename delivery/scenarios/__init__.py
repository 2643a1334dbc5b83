"""Bundled scenario files (package data): default.yaml, small.yaml."""
