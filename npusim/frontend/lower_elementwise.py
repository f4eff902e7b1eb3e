"""Elementwise ops and activations: one Elementwise op each, priced in ops per output element.

The ops-per-element figures are assumptions: one vector operation per primitive arithmetic
step of the usual formula (``sigmoid = 1 / (1 + exp(-x))`` is 4: negate, exp, add, divide;
the tanh form of GELU ~8). An engine may override them by ``func``.
"""
from __future__ import annotations

from .context import Node
from .registry import register

# op type -> (func, ops per output element); assumption as stated in the module docstring.
UNARY_BINARY: dict[str, tuple[str, float]] = {
    "Add": ("add", 1), "Sub": ("sub", 1), "Mul": ("mul", 1), "Div": ("div", 1),
    "Pow": ("pow", 2), "Mod": ("mod", 2), "BitShift": ("bitshift", 1),
    "Sqrt": ("sqrt", 1), "Reciprocal": ("reciprocal", 1), "Exp": ("exp", 1), "Log": ("log", 1),
    "Erf": ("erf", 1), "Tanh": ("tanh", 1), "Sigmoid": ("sigmoid", 4), "Relu": ("relu", 1),
    "LeakyRelu": ("leaky_relu", 2), "PRelu": ("prelu", 2), "Elu": ("elu", 3),
    "Selu": ("selu", 4), "Celu": ("celu", 4), "ThresholdedRelu": ("thresholded_relu", 1),
    "Gelu": ("gelu", 8), "HardSigmoid": ("hard_sigmoid", 3), "HardSwish": ("hard_swish", 4),
    "Softplus": ("softplus", 3), "Softsign": ("softsign", 3), "Mish": ("mish", 6),
    "Swish": ("swish", 5),
    "Neg": ("neg", 1), "Abs": ("abs", 1), "Sign": ("sign", 1), "Floor": ("floor", 1),
    "Ceil": ("ceil", 1), "Round": ("round", 1), "IsNaN": ("isnan", 1), "IsInf": ("isinf", 1),
    "Sin": ("sin", 1), "Cos": ("cos", 1), "Tan": ("tan", 1), "Asin": ("asin", 1),
    "Acos": ("acos", 1), "Atan": ("atan", 1), "Sinh": ("sinh", 1), "Cosh": ("cosh", 1),
    "Asinh": ("asinh", 1), "Acosh": ("acosh", 1), "Atanh": ("atanh", 1),
    "Equal": ("equal", 1), "Less": ("less", 1), "LessOrEqual": ("less_equal", 1),
    "Greater": ("greater", 1), "GreaterOrEqual": ("greater_equal", 1), "And": ("and", 1),
    "Or": ("or", 1), "Xor": ("xor", 1), "Not": ("not", 1), "BitwiseAnd": ("bitwise_and", 1),
    "BitwiseOr": ("bitwise_or", 1), "BitwiseXor": ("bitwise_xor", 1),
    "BitwiseNot": ("bitwise_not", 1), "Where": ("where", 1), "Cast": ("cast", 1),
    "CastLike": ("cast", 1), "Clip": ("clip", 2), "Shrink": ("shrink", 2),
    "Trilu": ("trilu_mask", 1), "OneHot": ("one_hot", 1), "EyeLike": ("eye", 1),
    "CumSum": ("cumsum", 1),
}

# Variadic ops: (func, ops per element = extra per input, constant part).
VARIADIC: dict[str, tuple[str, float, float]] = {
    "Sum": ("sum", 1, -1), "Min": ("min", 1, -1), "Max": ("max", 1, -1), "Mean": ("mean", 1, 0),
}


def _lower_simple(n: Node):
    func, per = UNARY_BINARY[n.op_type]
    return [n.elementwise(func, per)]


def _lower_variadic(n: Node):
    func, per_input, const = VARIADIC[n.op_type]
    k = len(n.inputs())
    if k == 1:
        return n.alias()
    return [n.elementwise(func, max(1.0, per_input * k + const))]


for _op in UNARY_BINARY:
    register(_op)(_lower_simple)
for _op in VARIADIC:
    register(_op)(_lower_variadic)


@register("Identity", "Dropout")
def lower_identity(n: Node):
    """Inference-time Dropout and Identity are free: the output is a view of the input
    (Dropout's optional mask output is never materialised by an inference engine)."""
    return n.alias()
