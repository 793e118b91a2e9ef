"""Governance: bias audits, drift monitors, policies and the model card."""
