"""Config options this plugin adds to tunewright."""
