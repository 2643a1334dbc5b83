"""Bundled plans (package data): report/ (`pbkit learn report --config`), figures/ (`pbkit figures --config`)."""
