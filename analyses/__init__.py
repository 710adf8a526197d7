"""Analyses: one module per figure family (see analyses/main.py)."""
