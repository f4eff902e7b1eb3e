"""Tensors: a name, a static shape, an element type and a role."""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from enum import Enum

from .dtypes import DType


class Role(str, Enum):
    """What a tensor is to the workload; decides where it lives and who pays for it.

    ``weight`` is a trained parameter (counted in the parameter total), ``kv_cache`` the
    attention cache carried between decode steps, ``constant`` a small non-trained
    initializer (a shape, a scale, a mask), ``activation`` everything computed at run time.
    """

    ACTIVATION = "activation"
    WEIGHT = "weight"
    KV_CACHE = "kv_cache"
    CONSTANT = "constant"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Tensor:
    """A tensor of static shape.

    >>> from npusim.ir.dtypes import BF16
    >>> Tensor("x", (4, 8), BF16).nbytes
    64.0
    """

    name: str
    shape: tuple[int, ...]
    dtype: DType
    role: Role = Role.ACTIVATION

    def __post_init__(self) -> None:
        shape = tuple(int(s) for s in self.shape)
        if any(s < 0 for s in shape):
            raise ValueError(f"tensor {self.name!r} has a negative extent in shape {shape}")
        object.__setattr__(self, "shape", shape)

    @property
    def rank(self) -> int:
        return len(self.shape)

    @cached_property
    def numel(self) -> int:
        return math.prod(self.shape)

    @cached_property
    def nbytes(self) -> float:
        """Storage bytes, fractional for sub-byte and block-scaled types."""
        return self.numel * self.dtype.bytes

    def with_role(self, role: Role) -> "Tensor":
        return Tensor(self.name, self.shape, self.dtype, role)
