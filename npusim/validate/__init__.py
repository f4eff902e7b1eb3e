"""Validation against measured silicon: ``npusim validate`` and ``npusim validate --fit``.

The package is also callable, so ``npusim.validate(...)`` is the public API's ``validate``
whether or not the subpackage has been imported (importing ``npusim.validate`` binds the name
``validate`` on ``npusim`` to this package).

>>> import npusim, npusim.validate
>>> callable(npusim.validate)
True
"""
import sys
import types

from .core import RowResult, ValidationResult, read_rows, validate
from .fit import fit

__all__ = ["RowResult", "ValidationResult", "fit", "read_rows", "validate"]


class _CallablePackage(types.ModuleType):
    def __call__(self, *args, **kwargs) -> ValidationResult:
        return validate(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
