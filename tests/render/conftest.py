"""Snapshot extensions and the sample plans for the renderers' tests."""

from __future__ import annotations

import pytest
from syrupy.assertion import SnapshotAssertion
from syrupy.extensions.single_file import SingleFileSnapshotExtension, WriteMode

from byokctl.plan import Plan
from tests.render.render_sample import full_plan, sample_plan


class MarkdownSnapshot(SingleFileSnapshotExtension):
    """Markdown snapshots as .md files, so a reviewer sees them as GitHub would."""

    file_extension = "md"
    _write_mode = WriteMode.TEXT


class JsonTextSnapshot(SingleFileSnapshotExtension):
    """The JSON plan exactly as rendered, byte for byte."""

    file_extension = "json"
    _write_mode = WriteMode.TEXT


class TextSnapshot(SingleFileSnapshotExtension):
    """The text plan exactly as printed."""

    file_extension = "txt"
    _write_mode = WriteMode.TEXT


@pytest.fixture
def md_snapshot(snapshot: SnapshotAssertion) -> SnapshotAssertion:
    return snapshot.use_extension(MarkdownSnapshot)


@pytest.fixture
def json_snapshot(snapshot: SnapshotAssertion) -> SnapshotAssertion:
    return snapshot.use_extension(JsonTextSnapshot)


@pytest.fixture
def text_snapshot(snapshot: SnapshotAssertion) -> SnapshotAssertion:
    return snapshot.use_extension(TextSnapshot)


@pytest.fixture(name="sample_plan")
def _sample_plan() -> Plan:
    """Every kind of change, a ``--target`` warning and one credential check."""
    return sample_plan()


@pytest.fixture(name="full_plan")
def _full_plan() -> Plan:
    """The same states, without ``--target``."""
    return full_plan()
