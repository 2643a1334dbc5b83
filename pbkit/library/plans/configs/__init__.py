"""Published transformers configs of the planned architectures (package data)."""
