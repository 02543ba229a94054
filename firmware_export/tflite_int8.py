"""Full-integer int8 TFLite conversion of the device's call, TFLite Micro's host interpreter (the
firmware's kernels, compiled for the host) beside ai-edge-litert (`speechmask.device.int8`), the
arena TFLite Micro needs, and the checks the export makes on the converted model."""

from __future__ import annotations

import math
import re
from typing import Iterable

import numpy as np

from speechmask.device import histories, input_names
from speechmask.device.int8 import LiteRT, model_layout, unbatched
from speechmask.errors import SpeechmaskError
from speechmask.models.mask import MaskConfig


class ExportError(SpeechmaskError):
    """A model that cannot be exported as asked (unsupported operator, over budget, ...)."""


def convert_int8(keras_model, cfg: MaskConfig, calibration: Iterable[list[np.ndarray]]) -> bytes:
    """TensorFlow's converter, full integer: int8 weights (per-channel where TFLite allows),
    int8 activations, int8 inputs and outputs. `calibration` yields real calls' float inputs
    (in `speechmask.device.input_names` order, without batch axis)."""
    import tensorflow as tf

    calls = list(calibration)
    if not calls:
        raise ExportError("no calibration data: the int8 ranges need real features")
    names = input_names(cfg)

    def representative():  # by name: the converted model may order its inputs differently
        for call in calls:
            yield {n: model_layout(np.asarray(a, np.float32)) for n, a in zip(names, call)}

    converter = tf.lite.TFLiteConverter.from_keras_model(keras_model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    return bytes(converter.convert())


class TFLM:
    """TFLite Micro's host interpreter (the `tflite-micro` package) on one model, with an arena of
    `arena_bytes`; inputs and outputs addressed as in `litert` (the same model)."""

    def __init__(self, model: bytes, arena_bytes: int, litert: LiteRT):
        from tflite_micro.python.tflite_micro import runtime

        self.interpreter = runtime.Interpreter.from_bytes(model, arena_size=arena_bytes)
        self.litert = litert

    def run_int8(self, qcall: list[np.ndarray]) -> list[np.ndarray]:
        for q, pos, d in zip(qcall, self.litert.in_pos, self.litert.inputs):
            self.interpreter.set_input(model_layout(q).reshape(d["shape"]), pos)
        self.interpreter.invoke()
        return [unbatched(self.interpreter.get_output(pos)) for pos in self.litert.out_pos]


def arena_bytes(model: bytes, limit: int = 1 << 20) -> int:
    """The TFLite Micro arena the model needs, as the host interpreter's recording allocator
    measures it ("Arena allocation total"), allocated in a separate process. An operator TFLite
    Micro lacks is refused here, by name: the host interpreter registers every kernel TFLite
    Micro has, so what it cannot resolve, no firmware build can run."""
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory(prefix="speechmask-tflm-") as tmp:
        path = Path(tmp) / "model.tflite"
        path.write_bytes(model)
        done = subprocess.run([sys.executable, "-m", "firmware_export._tflm_probe", str(path),
                               str(limit)], capture_output=True, text=True, timeout=120)
    text = done.stdout + done.stderr
    missing = sorted(set(re.findall(r"Didn't find op for builtin opcode '([A-Z0-9_]+)'", text)))
    if missing:
        raise ExportError(f"TFLite Micro has no kernel for operator(s) {', '.join(missing)} "
                          f"(the model uses {', '.join(operators(model))}); change the "
                          "architecture or the Keras twin so that it avoids them")
    found = re.search(r"Arena allocation total (\d+) bytes", text)
    if done.returncode != 0 or not found:
        tail = text.strip().splitlines()[-3:]
        raise ExportError(f"TFLite Micro could not allocate the model in {limit} bytes: "
                          + " | ".join(tail))
    return int(found.group(1))


def operators(model: bytes) -> list[str]:
    """The TFLite builtin operators the model uses, sorted."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=model)
    return sorted({d["op_name"] for d in interpreter._get_ops_details()})


def check_histories(litert: LiteRT) -> None:
    """Each `new<i>` must carry the quantization of `history<i>`, so that the firmware shifts
    bytes into its histories without requantizing (CONCATENATION guarantees it in TFLite)."""
    for k, h in enumerate(histories(litert.cfg)):
        qi, qo = litert.quant_in[1 + k], litert.quant_out[1 + k]
        if not (math.isclose(qi[0], qo[0], rel_tol=1e-6) and qi[1] == qo[1]):
            raise ExportError(f"{h.name} is quantized {qi} but the model returns it as {qo}: "
                              "the firmware would have to requantize its histories")
