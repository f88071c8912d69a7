"""Typed errors of the bulk annotation job.

They subclass the core's `serving.core.errors.C2SError`, so the CLI reports every failure the
same way: the message says what is wrong and what to change.
"""

from __future__ import annotations

from serving.core.errors import C2SError


class AnnotateError(C2SError):
    """A bulk annotation run cannot go on."""


class InputError(AnnotateError, ValueError):
    """The input file cannot be annotated as given (names, values, columns, cells)."""


class ResumeMismatch(AnnotateError):
    """The output folder holds a run with other settings or another input."""


class RemoteError(AnnotateError):
    """A remote gateway refused or failed a batch."""
