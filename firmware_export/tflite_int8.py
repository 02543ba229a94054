"""Full-integer int8 TFLite conversion of the mask's streaming call, and the two runtimes that
check it: ai-edge-litert (the desktop interpreter) and TFLite Micro's host interpreter (the
firmware's kernels, compiled for the host)."""

from __future__ import annotations

import math
from typing import Iterable

import numpy as np

from speechmask.errors import SpeechmaskError

from .keras_mask import INPUTS


class ExportError(SpeechmaskError):
    """A model that cannot be exported as asked (unsupported operator, over budget, ...)."""


def convert_int8(keras_model, calibration: Iterable[tuple[np.ndarray, ...]]) -> bytes:
    """TensorFlow's converter, full integer: int8 weights (per-channel where TFLite allows),
    int8 activations, int8 inputs and output; `calibration` yields one call's
    (frames, valid, state) at a time, each without the batch axis."""
    import tensorflow as tf

    calls = list(calibration)
    if not calls:
        raise ExportError("no calibration data: the int8 ranges need real features")

    def representative():  # by name: the converted model may order its inputs differently
        for call in calls:
            yield {name: np.asarray(a, np.float32)[None] for name, a in zip(INPUTS, call)}

    converter = tf.lite.TFLiteConverter.from_keras_model(keras_model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    return bytes(converter.convert())


def _order(details: list[dict]) -> list[int]:
    """Position of each of INPUTS among the model's inputs (matched by name)."""
    names = [d["name"] for d in details]
    out = []
    for want in INPUTS:
        hits = [i for i, n in enumerate(names) if want in n]
        if len(hits) != 1:
            raise ExportError(f"model inputs {names} do not name {want!r} exactly once")
        out.append(hits[0])
    return out


def quantize(x: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    return np.clip(np.round(x / scale) + zero_point, -128, 127).astype(np.int8)


class LiteRT:
    """ai-edge-litert's interpreter on one int8 model; `run` takes float inputs (quantized with
    the model's own input parameters) and returns the int8 output of each call."""

    def __init__(self, model: bytes):
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        # the reference kernels: the default XNNPACK delegate rounds int8 differently from the
        # kernels TFLite Micro runs
        self.interpreter = Interpreter(model_content=model,
                                       experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
        self.interpreter.allocate_tensors()
        self.inputs = self.interpreter.get_input_details()
        self.output = self.interpreter.get_output_details()[0]
        self.order = _order(self.inputs)

    def quantized_inputs(self, call: tuple[np.ndarray, ...]) -> list[np.ndarray]:
        """int8 arrays in the model's input order, each with a batch axis of 1."""
        arrays: list[np.ndarray | None] = [None] * len(self.inputs)
        for value, pos in zip(call, self.order):
            scale, zp = self.inputs[pos]["quantization"]
            arrays[pos] = quantize(np.asarray(value, np.float32), scale, zp)[None]
        return arrays

    def run(self, call: tuple[np.ndarray, ...]) -> np.ndarray:
        for arr, d in zip(self.quantized_inputs(call), self.inputs):
            self.interpreter.set_tensor(d["index"], arr)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self.output["index"])[0].copy()

    def dequantize(self, q: np.ndarray) -> np.ndarray:
        scale, zp = self.output["quantization"]
        return (q.astype(np.float32) - zp) * scale


class TFLM:
    """TFLite Micro's host interpreter (the `tflite-micro` package) on one model, with an arena of
    `arena_bytes`."""

    def __init__(self, model: bytes, arena_bytes: int):
        from tflite_micro.python.tflite_micro import runtime

        self.interpreter = runtime.Interpreter.from_bytes(model, arena_size=arena_bytes)

    def run(self, inputs: list[np.ndarray]) -> np.ndarray:
        """`inputs`: int8 arrays in the model's input order (see `LiteRT.quantized_inputs`)."""
        for i, arr in enumerate(inputs):
            self.interpreter.set_input(arr, i)
        self.interpreter.invoke()
        return np.array(self.interpreter.get_output(0))[0]


def arena_bytes(model: bytes, limit: int = 1 << 20) -> int:
    """The TFLite Micro arena the model needs, as the host interpreter's recording allocator
    measures it ("Arena allocation total"), allocated in a separate process."""
    import re
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory(prefix="speechmask-tflm-") as tmp:
        path = Path(tmp) / "model.tflite"
        path.write_bytes(model)
        done = subprocess.run([sys.executable, "-m", "firmware_export._tflm_probe", str(path),
                               str(limit)], capture_output=True, text=True, timeout=120)
    found = re.search(r"Arena allocation total (\d+) bytes", done.stdout + done.stderr)
    if done.returncode != 0 or not found:
        tail = (done.stdout + done.stderr).strip().splitlines()[-3:]
        raise ExportError(f"TFLite Micro could not allocate the model in {limit} bytes: "
                          + " | ".join(tail))
    return int(found.group(1))


def operators(model: bytes) -> list[str]:
    """The TFLite builtin operators the model uses, sorted."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=model)
    return sorted({d["op_name"] for d in interpreter._get_ops_details()})


def gate_open_above(threshold_logit: float, output_quantization: tuple[float, int]) -> int:
    """The int8 output value above which a gate opens: `q > this` exactly where the float rule
    `(q - zero_point) * scale > threshold_logit` holds."""
    scale, zp = output_quantization
    return math.floor(zp + threshold_logit / scale)


def int8_gates(litert: LiteRT, mask, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The device's closed loop for one utterance `(T, n_mels)` in int8: the gates the int8
    model itself decided are fed back as state. Returns (int8 outputs `(S, G)`, binary gates
    `(S, G)`)."""
    from .streaming import closed_loop

    open_above = gate_open_above(mask.cfg.gate.threshold_logit, litert.output["quantization"])

    def decide(frames, valid, state):
        q = litert.run((frames, valid, state))
        return q, (q.astype(np.int32) > open_above).astype(np.float32)

    outputs, gates = closed_loop(mask.cfg, features, decide)[3:]
    return outputs.astype(np.int8), gates
