"""Hydra config groups, installed as package data (``pkg://tunewright.conf``)."""
