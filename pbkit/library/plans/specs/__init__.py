"""Shipped plan specs (package data); see docs/plans.md."""
