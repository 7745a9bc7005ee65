"""The files ``byokctl init`` writes into a new config repository (package data).

``workflows/`` is also what ``examples/gitops/.github/workflows/`` holds, byte for byte
(a test keeps them equal), so the reference workflows and the scaffold are one thing.
"""
