"""One module per command: a typed function that does the work and returns an exit code.

The click layer in :mod:`byokctl.cli` only parses options and calls these.
"""
