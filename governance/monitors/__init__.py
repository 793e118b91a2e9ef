"""Drift monitors: a reference profile recorded by every run, compared with new data."""
