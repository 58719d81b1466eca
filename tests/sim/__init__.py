"""Deterministic cluster simulation tier (design rule 10): harness in ``cluster.py``."""
