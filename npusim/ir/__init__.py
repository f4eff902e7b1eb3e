"""npusim's intermediate representation: the vocabulary every other layer speaks.

Imports nothing else of npusim.
"""
from .dtypes import (BF16, BOOL, DTYPES, FP16, FP32, FP64, FP8_E4M3, FP8_E5M2, INT4, INT8,
                     INT16, INT32, INT64, MXFP4, UINT8, DType, dtype, grouped)
from .graph import Graph
from .ops import (NEURON_MODELS, OP_KINDS, Axis, Collective, Contraction, Elementwise, Movement,
                  Neuron, Op, Operand, Pool, Reduction, ShapeError, synops)
from .tensor import Role, Tensor

__all__ = [
    "BF16", "BOOL", "DTYPES", "FP16", "FP32", "FP64", "FP8_E4M3", "FP8_E5M2", "INT4", "INT8",
    "INT16", "INT32", "INT64", "MXFP4", "UINT8", "DType", "dtype", "grouped", "Graph", "OP_KINDS", "Axis",
    "Collective", "Contraction", "Elementwise", "Movement", "NEURON_MODELS", "Neuron", "Op",
    "Operand", "Pool", "Reduction", "ShapeError", "synops", "Role", "Tensor",
]
