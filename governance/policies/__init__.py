"""Bias policies: thresholds selected by audit.policy."""
