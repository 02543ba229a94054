"""Full-integer int8 TFLite conversion of the mask's streaming call, and the two runtimes that
check it: ai-edge-litert (the desktop interpreter) and TFLite Micro's host interpreter (the
firmware's kernels, compiled for the host)."""

from __future__ import annotations

import math
import re
from typing import Iterable

import numpy as np

from speechmask.errors import SpeechmaskError
from speechmask.models.mask import MaskConfig

from .streaming import closed_loop, histories, input_names, input_shapes, output_names


class ExportError(SpeechmaskError):
    """A model that cannot be exported as asked (unsupported operator, over budget, ...)."""


def model_layout(a: np.ndarray) -> np.ndarray:
    """One call's array -> the model's layout: `(T, C)` -> `(1, T, 1, C)`, `(S,)` -> `(1, S)`."""
    a = np.asarray(a)
    return a[None, :, None, :] if a.ndim == 2 else a[None]


def convert_int8(keras_model, cfg: MaskConfig, calibration: Iterable[list[np.ndarray]]) -> bytes:
    """TensorFlow's converter, full integer: int8 weights (per-channel where TFLite allows),
    int8 activations, int8 inputs and outputs. `calibration` yields real calls' float inputs
    (in `streaming.input_names` order, without batch axis)."""
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


def quantize(x: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    return np.clip(np.round(np.asarray(x, np.float32) / scale) + zero_point, -128, 127
                   ).astype(np.int8)


def dequantize(q: np.ndarray, quantization: tuple[float, int]) -> np.ndarray:
    scale, zp = quantization
    return (np.asarray(q).astype(np.float32) - zp) * scale


class LiteRT:
    """ai-edge-litert's interpreter on one int8 streaming model of a mask with config `cfg`.
    Inputs and outputs are addressed in `streaming.input_names` / `output_names` order (matched
    through the model's signature, whatever order the converter gave its tensors):
    `quant_in[k]` / `quant_out[k]` are their (scale, zero point), `in_pos[k]` / `out_pos[k]`
    their positions among the model's tensors (what TFLite Micro indexes by)."""

    def __init__(self, model: bytes, cfg: MaskConfig):
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        # the reference kernels: the default XNNPACK delegate rounds int8 differently from the
        # kernels TFLite Micro runs
        self.interpreter = Interpreter(model_content=model,
                                       experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
        self.interpreter.allocate_tensors()
        self.cfg = cfg
        ins, outs = self.interpreter.get_input_details(), self.interpreter.get_output_details()
        sigs = self.interpreter._get_full_signature_list()
        if len(sigs) != 1:
            raise ExportError(f"expected one signature in the model, found {list(sigs)}")
        sig = next(iter(sigs.values()))
        want_in, want_out = input_names(cfg), output_names(cfg)
        if sorted(sig["inputs"]) != sorted(want_in) or len(sig["outputs"]) != len(want_out):
            raise ExportError(f"the model's inputs {sorted(sig['inputs'])} and "
                              f"{len(sig['outputs'])} outputs do not fit this mask (inputs "
                              f"{want_in}, outputs {want_out})")
        # Keras names its outputs output_0, output_1, ... in the model's output order
        by_out = sorted(sig["outputs"], key=lambda n: int(n.rsplit("_", 1)[-1]))
        index_in = [d["index"] for d in ins]
        index_out = [d["index"] for d in outs]
        self.in_pos = [index_in.index(sig["inputs"][n]) for n in want_in]
        self.out_pos = [index_out.index(sig["outputs"][n]) for n in by_out]
        self.inputs = [ins[p] for p in self.in_pos]
        self.outputs = [outs[p] for p in self.out_pos]
        for d, shape in zip(self.inputs, input_shapes(cfg)):
            if int(np.prod(d["shape"])) != int(np.prod(shape)) or d["dtype"] != np.int8:
                raise ExportError(f"model input {d['name']} is {d['dtype'].__name__} "
                                  f"{list(d['shape'])}, this mask needs int8 {list(shape)}")
        self.quant_in = [tuple(d["quantization"]) for d in self.inputs]
        self.quant_out = [tuple(d["quantization"]) for d in self.outputs]

    def quantized(self, call: list[np.ndarray]) -> list[np.ndarray]:
        """One call's float inputs -> int8, with the model's quantization."""
        return [quantize(a, *q) for a, q in zip(call, self.quant_in)]

    def run_int8(self, qcall: list[np.ndarray]) -> list[np.ndarray]:
        """int8 inputs (no batch axis) -> int8 outputs (tanh_logit `(G,)`, news `(fps, C)`)."""
        for q, d in zip(qcall, self.inputs):
            self.interpreter.set_tensor(d["index"], model_layout(q).reshape(d["shape"]))
        self.interpreter.invoke()
        return [_unbatched(self.interpreter.get_tensor(d["index"])) for d in self.outputs]

    def run(self, call: list[np.ndarray]) -> list[np.ndarray]:
        return self.run_int8(self.quantized(call))


def _unbatched(a: np.ndarray) -> np.ndarray:
    a = np.array(a)[0]
    return a.reshape(a.shape[0], a.shape[-1]) if a.ndim == 3 else a


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
        return [_unbatched(self.interpreter.get_output(pos)) for pos in self.litert.out_pos]


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


def gate_open_above(cfg: MaskConfig, output_quantization: tuple[float, int]) -> int:
    """The int8 `tanh_logit` value above which a gate opens: `q > this` exactly where the float
    rule `(q - zero_point) * scale * logit_bound > threshold_logit` holds."""
    scale, zp = output_quantization
    return math.floor(zp + cfg.gate.threshold_logit / cfg.logit_bound / scale)


def check_histories(litert: LiteRT) -> None:
    """Each `new<i>` must carry the quantization of `history<i>`, so that the firmware shifts
    bytes into its histories without requantizing (CONCATENATION guarantees it in TFLite)."""
    for k, h in enumerate(histories(litert.cfg)):
        qi, qo = litert.quant_in[1 + k], litert.quant_out[1 + k]
        if not (math.isclose(qi[0], qo[0], rel_tol=1e-6) and qi[1] == qo[1]):
            raise ExportError(f"{h.name} is quantized {qi} but the model returns it as {qo}: "
                              "the firmware would have to requantize its histories")


def int8_gates(litert: LiteRT, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The device's closed loop for one utterance `(T, n_mels)` in int8: the int8 model's own
    histories (int8 bytes, as the firmware keeps them) and gates fed back. Returns (int8
    tanh_logit `(S, G)`, binary gates `(S, G)`)."""
    cfg = litert.cfg
    open_above = gate_open_above(cfg, litert.quant_out[0])
    q_frames, q_state = litert.quant_in[0], litert.quant_in[-1]

    def decide(inputs):
        frames, *past, state = inputs
        out, *news = litert.run_int8([quantize(frames, *q_frames), *past,
                                      quantize(state, *q_state)])
        return out, (out.astype(np.int32) > open_above).astype(np.float32), news

    initial = [np.full((h.frames, h.channels), litert.quant_in[1 + k][1], np.int8)
               for k, h in enumerate(histories(cfg))]  # zero, in each history's int8 units
    _, outputs, gates = closed_loop(cfg, features, decide, initial)
    return outputs.astype(np.int8), gates
