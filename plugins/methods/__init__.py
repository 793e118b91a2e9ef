"""Builtin plugins of tunewright."""
