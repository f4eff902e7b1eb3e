"""ONNX element types as IR dtypes."""
from __future__ import annotations

from onnx import TensorProto

from ..ir import (BF16, BOOL, FP16, FP32, FP64, FP8_E4M3, FP8_E5M2, INT4, INT8, INT16, INT32,
                  INT64, UINT8, DType)

# FP4 E2M1 without a shared scale (ONNX FLOAT4E2M1, opset 23): 4 bits per value.
FP4_E2M1 = DType("fp4_e2m1", 4, True)

_BY_ELEM: dict[int, DType] = {
    TensorProto.FLOAT: FP32, TensorProto.FLOAT16: FP16, TensorProto.BFLOAT16: BF16,
    TensorProto.DOUBLE: FP64, TensorProto.INT8: INT8, TensorProto.UINT8: UINT8,
    TensorProto.INT16: INT16, TensorProto.UINT16: INT16, TensorProto.INT32: INT32,
    TensorProto.UINT32: INT32, TensorProto.INT64: INT64, TensorProto.UINT64: INT64,
    TensorProto.BOOL: BOOL, TensorProto.FLOAT8E4M3FN: FP8_E4M3,
    TensorProto.FLOAT8E4M3FNUZ: FP8_E4M3, TensorProto.FLOAT8E5M2: FP8_E5M2,
    TensorProto.FLOAT8E5M2FNUZ: FP8_E5M2, TensorProto.INT4: INT4, TensorProto.UINT4: INT4,
}
if hasattr(TensorProto, "FLOAT4E2M1"):
    _BY_ELEM[TensorProto.FLOAT4E2M1] = FP4_E2M1


def ir_dtype(elem_type: int) -> DType | None:
    """The IR dtype of an ONNX ``TensorProto`` element type, or None (strings, complex)."""
    return _BY_ELEM.get(elem_type)


def int_bits(bits: int) -> DType:
    """An integer dtype of ``bits`` bits (the packed weights of MatMulNBits)."""
    return {4: INT4, 8: INT8}.get(bits) or DType(f"int{bits}", bits, False)


def mac_dtype(d: DType) -> DType:
    """The type products are computed in: 8-bit integers of either sign multiply as int8."""
    return INT8 if d in (INT8, UINT8) else d
