"""Spike rates measured on a calibration batch: data-based normalisation through onnxruntime.

Rate-based ANN-to-SNN conversion scales each layer so that its largest activations map to
one spike per timestep (Diehl et al. 2015, IJCNN, "data-based normalisation"), and Rueckauer
et al. 2017 (Front. Neurosci. 11:682) take a high percentile of the activations instead of the
maximum, so that outliers do not silence the layer. After that scaling a neuron fires
``a / lam`` spikes per step (at most one), which is what :func:`calibrate_rates` measures.
onnxruntime is an optional dependency: only this module imports it, and only when called.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Mapping

import numpy as np

from ..errors import ModelError

if TYPE_CHECKING:
    from .spiking import RateSet

#: Data-based normalisation scales each layer by the p-th percentile of its non-zero
#: activations instead of their maximum ("robust normalisation", Rueckauer et al. 2017, Front.
#: Neurosci. 11:682, sec. 2.3; the SNN toolbox takes the percentile over non-zero activations,
#: snntoolbox/conversion/utils.py ``normalize_parameters``). The paper explores p from 99.0 up
#: to 99.9999; 99.9 is our choice within that range (assumption).
DEFAULT_PERCENTILE = 99.9

#: Assumption: inputs=None calibrates on this many uniform random samples in [0, 1).
DEFAULT_SAMPLES = 16


class CalibrationError(ModelError):
    """A model or calibration batch :func:`calibrate_rates` cannot run (no weight data, wrong
    input shape, an onnxruntime failure)."""


def calibrate_rates(onnx_path: str | Path, inputs: np.ndarray | None = None, *,
                    percentile: float = DEFAULT_PERCENTILE, samples: int = DEFAULT_SAMPLES,
                    seed: int = 0, dims: Mapping[str, int] | None = None,
                    max_pool: str = "error") -> RateSet:
    """Spike rates of the layers :func:`to_snn` makes, measured on a calibration batch.

    The model runs through onnxruntime; for each spiking layer the activations ``a`` of the
    batch (a Relu's output, the output layer's current rectified at 0) are normalised by the
    ``percentile``-th percentile ``lam`` of their non-zero values (data-based normalisation,
    Diehl et al. 2015; Rueckauer et al. 2017), and the rate is the mean of ``clip(a / lam, 0,
    1)``: after normalisation a neuron fires ``a / lam`` spikes per step, at most one. The
    input rate is that of ``|x|``, ``x`` the tensor the encoder reads (the input after any
    preprocessing; a signed input spikes in proportion to its magnitude, assumption).

    Parameters
    ----------
    onnx_path : str or Path
        The ONNX model, with its trained weights (inline or in external-data files).
    inputs : numpy array, optional
        A calibration batch shaped like the model input (any batch size when the batch axis is
        symbolic; a multiple of a fixed batch). None draws :data:`DEFAULT_SAMPLES` uniform
        samples in [0, 1) with ``seed``, and says so in the notes (rates of synthetic data).
    percentile : float
        In (0, 100]; :data:`DEFAULT_PERCENTILE` by default (100 is the maximum, Diehl 2015).

    Returns
    -------
    RateSet
        Rates by layer name (as :func:`to_snn` names the layers), the normalising activation
        of each layer in ``scales``.

    Raises
    ------
    CalibrationError
        The initializers carry no data (a weight-free export), an external-data file is
        missing, the batch does not fit the model input, or onnxruntime fails.
    """
    try:
        import onnxruntime as ort
    except ImportError:
        raise CalibrationError("calibrate_rates needs onnxruntime (pip install onnxruntime); "
                               "or give rates in a file") from None
    if isinstance(percentile, bool) or not isinstance(percentile, (int, float)) \
            or not 0.0 < float(percentile) <= 100.0:
        raise CalibrationError(f"percentile must be in (0, 100], got {percentile!r}")
    from ..frontend.onnx_loader import load_onnx
    from .spiking import RateSet, spiking_layers
    path = Path(onnx_path)
    label = str(path)
    proto = _read_proto(path, label)
    layers = spiking_layers(load_onnx(path, _bind(proto, inputs, dims)), max_pool)
    _load_weights(proto, path, label)
    enc = layers[0]
    x_name = enc.source                   # the graph input; the encoder reads enc.tensor
    x, note = _batch(proto, x_name, inputs, samples, seed, dims, label)
    fetched = [lay.tensor for lay in layers if lay.tensor != x_name]
    values = dict(zip(fetched, _run(ort, proto, x_name, x, fetched, label)))
    values[x_name] = x
    rates, scales = {}, {}
    rates[enc.name], scales[enc.name] = _normalised_rate(np.abs(values[enc.tensor]), percentile)
    for lay in layers[1:]:
        rates[lay.name], scales[lay.name] = _normalised_rate(
            np.maximum(values[lay.tensor], 0.0), percentile)
    src = (f"calibration of {label} on {len(x)} sample{'s' if len(x) != 1 else ''} "
           f"(p{percentile:g} normalisation)")
    return RateSet(rates, src, (note,) if note else (), scales)


def normalised_rate(a: np.ndarray, percentile: float = DEFAULT_PERCENTILE) -> tuple[float, float]:
    """Mean spike rate of non-negative activations ``a`` after data-based normalisation, and
    the normalising activation ``lam`` (the percentile of the non-zero values; 0 if none).

    >>> normalised_rate(np.array([0.0, 1.0, 2.0, 4.0]), 100)
    (0.4375, 4.0)
    """
    return _normalised_rate(a, percentile)


def _normalised_rate(a: np.ndarray, percentile: float) -> tuple[float, float]:
    a = np.asarray(a, dtype=np.float64).reshape(-1)
    nz = a[a > 0]
    if nz.size == 0:
        return 0.0, 0.0
    lam = float(np.percentile(nz, percentile))
    return float(np.clip(a / lam, 0.0, 1.0).mean()), lam


def _read_proto(path: Path, label: str):
    """The model without its external data (that is read once the model is known good)."""
    import onnx
    if not path.is_file():
        raise CalibrationError(f"{label}: no such ONNX file; check the path")
    try:
        return onnx.load(str(path), load_external_data=False)
    except Exception as e:  # noqa: BLE001 - protobuf raises several unrelated types
        raise CalibrationError(f"{label}: not a valid ONNX model ({type(e).__name__}); give "
                               f"an ONNX file") from None


def _bind(proto, inputs, dims: Mapping[str, int] | None) -> dict[str, int]:
    """Values for the input's symbolic dims: those given, the batch axis 1 (the structure does
    not depend on it), the other axes from the calibration batch's shape."""
    out = dict(dims or {})
    inits = {t.name for t in proto.graph.initializer}
    shape = np.shape(inputs) if inputs is not None else None
    for vi in proto.graph.input:
        if vi.name in inits:
            continue
        axes = vi.type.tensor_type.shape.dim
        for i, d in enumerate(axes):
            if d.HasField("dim_param") and d.dim_param not in out:
                if i == 0:
                    out[d.dim_param] = 1
                elif shape is not None and len(shape) == len(axes) and int(shape[i]) >= 1:
                    out[d.dim_param] = int(shape[i])
    return out


def _load_weights(proto, path: Path, label: str) -> None:
    """Read the external weight data into ``proto``; refuse it if an initializer carries no
    data (a weight-free export) or its data file is missing."""
    import onnx
    from onnx import TensorProto
    base = path.parent
    for t in proto.graph.initializer:
        if t.data_location == TensorProto.EXTERNAL:
            where = {e.key: e.value for e in t.external_data}.get("location", "")
            target = (base / where).resolve()
            if not where or not target.is_file() or base.resolve() not in target.parents:
                raise CalibrationError(
                    f"{label}: initializer {t.name!r} keeps its data in external file "
                    f"{where!r}, which is not beside the model; put the data file next to it "
                    f"or give rates in a file")
    try:
        onnx.external_data_helper.load_external_data_for_model(proto, str(base))
    except Exception as e:  # noqa: BLE001 - truncated or unreadable external data
        raise CalibrationError(f"{label}: cannot read the external weight data ("
                               f"{' '.join(str(e).split())[:120]}); check the data files") from None
    empty = [t for t in proto.graph.initializer if math.prod(t.dims) > 0 and not _has_data(t)]
    if empty:
        t = empty[0]
        raise CalibrationError(
            f"{label}: initializer {t.name!r} (shape {tuple(t.dims)}) carries no data"
            f"{f' (and {len(empty) - 1} more)' if len(empty) > 1 else ''}: a model exported "
            f"without weights cannot be calibrated; export it with its trained weights, or "
            f"give rates in a file, or use the default rate")


def _has_data(t) -> bool:
    if t.raw_data:
        return True
    return any(len(getattr(t, f)) for f in ("float_data", "int32_data", "int64_data",
                                            "double_data", "uint64_data", "string_data"))


def _batch(proto, name: str, inputs, samples: int, seed: int, dims, label: str):
    """The calibration batch as the model's input dtype, checked against its shape."""
    from onnx import helper
    vi = next((v for v in proto.graph.input if v.name == name), None)
    if vi is None:
        raise CalibrationError(f"{label}: input {name!r} is not a graph input of the model")
    dims = dict(dims or {})
    want = [d.dim_value if d.HasField("dim_value") else dims.get(d.dim_param)
            for d in vi.type.tensor_type.shape.dim]
    elem = helper.tensor_dtype_to_np_dtype(vi.type.tensor_type.elem_type)
    note = ""
    if inputs is None:
        if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
            raise CalibrationError(f"samples must be a whole number >= 1, got {samples!r}")
        if any(d is None or d < 1 for d in want[1:]):
            raise CalibrationError(f"{label}: input {name!r} has unbound dims {want}; give "
                                   f"calibration inputs or bind the dims")
        x = np.random.default_rng(seed).random((samples, *want[1:]))
        note = (f"rates calibrated on {samples} uniform random inputs in [0, 1) (no data "
                f"given): they describe synthetic data, not a data set (assumption)")
    else:
        try:
            x = np.asarray(inputs, dtype=np.float64)
        except (TypeError, ValueError):
            raise CalibrationError(f"calibration inputs are not numeric ({type(inputs).__name__}"
                                   f"); give a numpy array shaped like input {name!r}") from None
        if not np.all(np.isfinite(x)):
            raise CalibrationError("calibration inputs hold NaN or infinite values; give "
                                   "finite numbers")
    if x.ndim != len(want) or x.shape[0] < 1 or any(
            w is not None and w > 0 and w != s for w, s in zip(want[1:], x.shape[1:])):
        shown = tuple(w if w else "batch" for w in want)
        raise CalibrationError(f"{label}: calibration inputs have shape {x.shape} but input "
                               f"{name!r} is {shown}; give a batch of samples shaped like it")
    if want and want[0] and x.shape[0] % want[0]:
        raise CalibrationError(f"{label}: {x.shape[0]} calibration samples do not divide into "
                               f"the model's fixed batch of {want[0]}; give a multiple of it")
    return x.astype(elem), note


def _run(ort, proto, x_name: str, x: np.ndarray, wanted: list[str], label: str) -> list:
    """The values of ``wanted`` tensors over the batch (in chunks of a fixed batch size)."""
    import onnx
    from onnx import helper
    model = onnx.ModelProto()
    model.CopyFrom(proto)
    known = {v.name: v for v in (*model.graph.value_info, *model.graph.output,
                                 *model.graph.input)}
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
        known.update({v.name: v for v in inferred.graph.value_info})
    except Exception:  # noqa: BLE001 - load_onnx inferred shapes already; types only
        pass
    outputs = {v.name for v in model.graph.output}
    for name in dict.fromkeys(wanted):
        if name in outputs:
            continue
        if name not in known:
            raise CalibrationError(f"{label}: tensor {name!r} is not a value of the ONNX model; "
                                   f"calibration cannot read it")
        elem = known[name].type.tensor_type.elem_type
        model.graph.output.append(helper.make_tensor_value_info(name, elem, None))
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    try:
        sess = ort.InferenceSession(model.SerializeToString(), opts,
                                    providers=["CPUExecutionProvider"])
        vi = next(v for v in model.graph.input if v.name == x_name)
        d0 = vi.type.tensor_type.shape.dim[0] if vi.type.tensor_type.shape.dim else None
        step = d0.dim_value if d0 is not None and d0.HasField("dim_value") else len(x)
        chunks = [sess.run(wanted, {x_name: x[i:i + step]}) for i in range(0, len(x), step)]
    except Exception as e:  # noqa: BLE001 - onnxruntime raises its own exception types
        raise CalibrationError(f"{label}: onnxruntime could not run the model "
                               f"({' '.join(str(e).split())[:200]}); check the model and the "
                               f"calibration inputs") from None
    return [np.concatenate([np.asarray(c[i]) for c in chunks]) for i in range(len(wanted))]
