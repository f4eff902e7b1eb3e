"""User-facing errors. Each message names the file, node or field at fault and the fix.

The CLI prints the message of any :class:`NpusimError` (and of the IR's ``ShapeError``) as one
paragraph and exits with status 2, never with a traceback.
"""
from __future__ import annotations


class NpusimError(Exception):
    """Base of every error caused by the user's input rather than by npusim itself."""


class ModelError(NpusimError):
    """A model file or graph npusim cannot read: not ONNX, truncated, inconsistent shapes."""


class UnsupportedOpError(ModelError):
    """An ONNX node whose op type (in its domain) has no lowering."""


class UnboundDimError(ModelError):
    """Symbolic dimensions left without a value; the message lists the names to bind."""


class ArchError(NpusimError):
    """An architecture file or override that is missing, malformed or of the wrong unit."""


class CapacityError(NpusimError):
    """A workload that does not fit the architecture's memory."""


class OutputError(NpusimError):
    """An output file or folder that cannot be written; the CLI adds the flag that named it."""
