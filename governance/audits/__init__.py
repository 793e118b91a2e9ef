"""Bias audits, registered as tunewright plugins."""
