"""Errors a student or instructor can fix themselves.

A ``CourseError`` is an expected problem with the set-up or the input (missing data, a bad
environment variable, a bad checkpoint, an unknown lecture), not a bug in ``coursekit``. Its
message says what was wrong and what to do. Subclasses also derive from the built-in
exception that fits (``FileNotFoundError``, ``ValueError``), so ``except ValueError`` still
catches them.
"""

from __future__ import annotations


class CourseError(Exception):
    """An expected, fixable problem; the message says what to do."""


class CheckpointError(CourseError, ValueError):
    """A training checkpoint is damaged, missing or from another model; the message names the
    file and says what to do (resume from its ``.prev``, delete it, or restore it)."""
