"""Validation against measured silicon: ``npusim validate`` and ``npusim validate --fit``.

>>> from npusim.validate import validate, fit   # doctest: +SKIP
"""
from .core import RowResult, ValidationResult, read_rows, validate
from .fit import fit

__all__ = ["RowResult", "ValidationResult", "fit", "read_rows", "validate"]
