"""Bundled report plans: quick.yaml, full.yaml (learning.report.ReportPlan)."""
