"""Packaged zoo specs (YAML), usable by name: `pbkit zoo build default`."""
