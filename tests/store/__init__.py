"""Tests of the live store and the apply executor."""
