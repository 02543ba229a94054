"""ONNX export of the streaming call (for ST Edge AI Core): float `mask.onnx` from PyTorch, and
`mask_int8.onnx` in QDQ form from onnxruntime's static quantization on real calibration calls."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np
import torch

from speechmask.atomic import atomic_output
from speechmask.models.mask import MaskGenerator

from speechmask.device import StreamingCall, input_names, input_shapes, output_names
from .tflite_int8 import ExportError

OPSET = 17


def export_onnx(mask: MaskGenerator, path: Path) -> Path:
    """Write the float streaming call to `path` (checked with onnx.checker) and return it."""
    import onnx

    call = StreamingCall(mask).eval()
    cfg = mask.cfg
    example = tuple(torch.zeros(1, *s) for s in input_shapes(cfg))
    with atomic_output(path) as tmp:
        # TorchScript exporter (dynamo=False): the default dynamo exporter needs onnxscript's
        # optimiser and gives the same graph for this small static model
        torch.onnx.export(call, example, tmp, input_names=input_names(cfg),
                          output_names=output_names(cfg), opset_version=OPSET, dynamo=False)
        onnx.checker.check_model(onnx.load(tmp), full_check=True)
    return Path(path)


def quantize_onnx(float_path: Path, int8_path: Path,
                  calibration: Iterable[list[np.ndarray]]) -> Path:
    """QDQ int8 (per-channel weights, int8 activations) by onnxruntime's static quantization."""
    import onnx
    from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType,
                                          quantize_static)

    names = _input_names(float_path)
    calls = [_feed(names, c) for c in calibration]
    if not calls:
        raise ExportError("no calibration data: the int8 ranges need real features")

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter(calls)

        def get_next(self):
            return next(self.it, None)

    with atomic_output(int8_path) as tmp:
        quantize_static(str(float_path), tmp, Reader(), quant_format=QuantFormat.QDQ,
                        activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                        per_channel=True)
        onnx.checker.check_model(onnx.load(tmp))
    return Path(int8_path)


def run_onnx(path: Path, calls: Iterable[list[np.ndarray]]) -> np.ndarray:
    """The first output, tanh_logit `(N, G)` (log_alpha / logit_bound), of each call in
    onnxruntime (CPU), graph optimisations off.

    Off, because with them onnxruntime fuses a QDQ graph into its own int8 kernels, and on x86
    CPUs without VNNI (AVX2 only) those sum pairs of u8 x s8 products in int16 and saturate
    (onnxruntime's documented U8S8 caveat): the same file then scores differently by host CPU
    (measured: the random `tiny` mask's worst call off by 2.2 of a 4.0 bound on an AVX2 CPU,
    0.43 unfused). Unfused, each DequantizeLinear -> float op -> QuantizeLinear runs as the
    format defines it, without a host kernel's int16 saturation."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    return np.array([session.run(["tanh_logit"], _feed(names, c))[0][0] for c in calls])


def _feed(names: list[str], call: list[np.ndarray]) -> dict[str, np.ndarray]:
    """One call's inputs by name (`names`: the graph's inputs, in `input_names` order)."""
    if len(names) != len(call):
        raise ExportError(f"the model has inputs {names}, the call gives {len(call)} arrays")
    return {n: np.asarray(a, np.float32)[None] for n, a in zip(names, call)}


def _input_names(path: Path) -> list[str]:
    import onnx

    return [i.name for i in onnx.load(str(path)).graph.input]
