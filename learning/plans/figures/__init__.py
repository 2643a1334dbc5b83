"""Bundled figure plans: quick.yaml, full.yaml (learning.figures.FigureSettings)."""
