"""Shipped plan data: architecture configs (configs/) and plan specs (specs/)."""
