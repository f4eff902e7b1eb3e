"""Element types, with possibly fractional storage size.

A block-scaled format stores a shared scale per block of values; its storage cost per value is
``element_bits + scale_bits / block``. MXFP4 (OCP Microscaling v1.0: 32 FP4 E2M1 values share one
8-bit E8M0 scale) therefore costs 4 + 8/32 = 4.25 bits per value.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DType:
    """An element type.

    Attributes
    ----------
    name : str
        Canonical name (``"bf16"``, ``"mxfp4"``...).
    element_bits : int
        Bits of one value, without any shared scale.
    is_float : bool
        Floating point (True) or integer (False).
    scale_bits : int
        Bits of the shared scale of one block (0 if not block-scaled).
    block : int
        Values sharing one scale (1 if not block-scaled).
    base : str
        For a group-scaled variant of another type (``int4_g128``), that type's name.
    """

    name: str
    element_bits: int
    is_float: bool
    scale_bits: int = 0
    block: int = 1
    base: str = ""

    @property
    def kind(self) -> str:
        """The element type a MAC unit sees: ``int4`` for ``int4_g128``, else the name."""
        return self.base or self.name

    @property
    def bits(self) -> float:
        """Storage bits per value, shared scales included."""
        return self.element_bits + self.scale_bits / self.block

    @property
    def bytes(self) -> float:
        """Storage bytes per value (may be fractional: 0.53125 for mxfp4)."""
        return self.bits / 8.0

    def __str__(self) -> str:
        return self.name


FP32 = DType("fp32", 32, True)
BF16 = DType("bf16", 16, True)
FP16 = DType("fp16", 16, True)
FP8_E4M3 = DType("fp8_e4m3", 8, True)
FP8_E5M2 = DType("fp8_e5m2", 8, True)
INT8 = DType("int8", 8, False)
INT4 = DType("int4", 4, False)
# OCP Microscaling Formats (MX) v1.0, section 5: MXFP4 = 32 x E2M1 + one E8M0 scale.
MXFP4 = DType("mxfp4", 4, True, scale_bits=8, block=32)
# Wider integer and other types that appear in ONNX graphs (indices, shapes, masks).
INT64 = DType("int64", 64, False)
INT32 = DType("int32", 32, False)
INT16 = DType("int16", 16, False)
UINT8 = DType("uint8", 8, False)
BOOL = DType("bool", 8, False)
FP64 = DType("fp64", 64, True)

DTYPES: dict[str, DType] = {
    d.name: d
    for d in (FP32, BF16, FP16, FP8_E4M3, FP8_E5M2, INT8, INT4, MXFP4,
              INT64, INT32, INT16, UINT8, BOOL, FP64)
}
_ALIASES = {"fp8": "fp8_e4m3", "float32": "fp32", "float16": "fp16", "bfloat16": "bf16",
            "float": "fp32", "half": "fp16", "uint4": "int4", "float64": "fp64",
            "double": "fp64", "float8_e4m3fn": "fp8_e4m3", "float8_e5m2": "fp8_e5m2"}


def grouped(base: DType, group: int, scale_bits: int = 16) -> DType:
    """``base`` with one ``scale_bits`` scale per ``group`` values (weight-only quantisation
    with group scales, as GPTQ/AWQ store int4 weights with an fp16 scale per 128 values).

    >>> grouped(INT4, 128).bits
    4.125
    """
    if group < 1:
        raise ValueError(f"a quantisation group has at least one value, not {group}")
    return DType(f"{base.name}_g{group}", base.element_bits, base.is_float, scale_bits, group,
                 base=base.name)


def dtype(name: str | DType) -> DType:
    """Return the DType named ``name`` (a DType is returned unchanged).

    >>> dtype("mxfp4").bits
    4.25
    >>> dtype("fp8").name
    'fp8_e4m3'
    >>> dtype("int4_g128").bits
    4.125
    """
    if isinstance(name, DType):
        return name
    key = _ALIASES.get(name.lower(), name.lower())
    if key in DTYPES:
        return DTYPES[key]
    head, sep, group = key.rpartition("_g")
    if sep and group.isdigit() and head in DTYPES:
        return grouped(DTYPES[head], int(group))
    try:
        return DTYPES[key]
    except KeyError:
        raise ValueError(
            f"unknown dtype {name!r}; known: {', '.join(DTYPES)}") from None
