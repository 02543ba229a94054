"""ONNX export of the streaming call (for ST Edge AI Core): float `mask.onnx` from PyTorch, and
`mask_int8.onnx` in QDQ form from onnxruntime's static quantization on real calibration calls."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np
import torch

from speechmask.atomic import atomic_output
from speechmask.models.mask import MaskGenerator

from .keras_mask import INPUTS
from .streaming import StreamingCall
from .tflite_int8 import ExportError

OPSET = 17


def export_onnx(mask: MaskGenerator, path: Path) -> Path:
    """Write the float streaming call to `path` (checked with onnx.checker) and return it."""
    import onnx

    call = StreamingCall(mask).eval()
    cfg = mask.cfg
    example = (torch.zeros(1, cfg.window_frames, cfg.frontend.n_mels),
               torch.ones(1, cfg.window_frames, 1), torch.zeros(1, call.state_width()))
    with atomic_output(path) as tmp:
        # TorchScript exporter (dynamo=False): the default dynamo exporter needs onnxscript's
        # optimiser and gives the same graph for this small static model
        torch.onnx.export(call, example, tmp, input_names=list(INPUTS),
                          output_names=["log_alpha"], opset_version=OPSET, dynamo=False)
        onnx.checker.check_model(onnx.load(tmp), full_check=True)
    return Path(path)


def quantize_onnx(float_path: Path, int8_path: Path,
                  calibration: Iterable[tuple[np.ndarray, ...]]) -> Path:
    """QDQ int8 (per-channel weights, int8 activations) by onnxruntime's static quantization."""
    import onnx
    from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType,
                                          quantize_static)

    calls = [{n: np.asarray(a, np.float32)[None] for n, a in zip(INPUTS, c)} for c in calibration]
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


def run_onnx(path: Path, calls: Iterable[tuple[np.ndarray, ...]]) -> np.ndarray:
    """log_alpha `(N, G)` of each call in onnxruntime (CPU)."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    out = [session.run(None, {n: np.asarray(a, np.float32)[None] for n, a in zip(INPUTS, c)})[0][0]
           for c in calls]
    return np.array(out)
