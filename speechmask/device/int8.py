"""The device's call in int8: quantization helpers, the exported TFLite model on ai-edge-litert's
reference kernels (`LiteRT`), its closed loop (`int8_gates`: what the device sends), and the
contract stamp carried in the `.tflite` metadata. Needs the [export] extra (ai-edge-litert);
the attack suite (`attack --int8`) and the export both use it, so it lives in the core."""

from __future__ import annotations

import json
import math

import numpy as np

from ..models.mask import MaskConfig
from .contract import ContractError, histories, input_names, input_shapes, output_names
from .reference import closed_loop

STAMP_METADATA = "speechmask_device_contract"  # name of the .tflite metadata entry
STAMP_ALIGNMENT = 16  # TFLite's converter aligns buffers to 16 bytes; a re-packed model keeps it


def model_layout(a: np.ndarray) -> np.ndarray:
    """One call's array -> the model's layout: `(T, C)` -> `(1, T, 1, C)`, `(S,)` -> `(1, S)`."""
    a = np.asarray(a)
    return a[None, :, None, :] if a.ndim == 2 else a[None]


def quantize(x: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    return np.clip(np.round(np.asarray(x, np.float32) / scale) + zero_point, -128, 127
                   ).astype(np.int8)


def dequantize(q: np.ndarray, quantization: tuple[float, int]) -> np.ndarray:
    scale, zp = quantization
    return (np.asarray(q).astype(np.float32) - zp) * scale


class LiteRT:
    """ai-edge-litert's interpreter on one int8 streaming model of a mask with config `cfg`.
    Inputs and outputs are addressed in `input_names` / `output_names` order (matched through
    the model's signature, whatever order the converter gave its tensors): `quant_in[k]` /
    `quant_out[k]` are their (scale, zero point), `in_pos[k]` / `out_pos[k]` their positions
    among the model's tensors (what TFLite Micro indexes by). ContractError for a model whose
    inputs and outputs do not fit `cfg`."""

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
            raise ContractError(f"expected one signature in the model, found {list(sigs)}")
        sig = next(iter(sigs.values()))
        want_in, want_out = input_names(cfg), output_names(cfg)
        if sorted(sig["inputs"]) != sorted(want_in) or len(sig["outputs"]) != len(want_out):
            raise ContractError(f"the model's inputs {sorted(sig['inputs'])} and "
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
                raise ContractError(f"model input {d['name']} is {d['dtype'].__name__} "
                                    f"{list(d['shape'])}, this mask needs int8 {list(shape)}")
        self.quant_in = [tuple(d["quantization"]) for d in self.inputs]
        self.quant_out = [tuple(d["quantization"]) for d in self.outputs]

    def quantized(self, call: list[np.ndarray]) -> list[np.ndarray]:
        """One call's float inputs -> int8, with the model's quantization."""
        return [quantize(a, *q) for a, q in zip(call, self.quant_in)]

    def run_int8(self, qcall: list[np.ndarray]) -> list[np.ndarray]:
        """int8 inputs (no batch axis) -> int8 outputs (tanh_logit `(G,)`, news
        `(frames_per_segment, C)`)."""
        for q, d in zip(qcall, self.inputs):
            self.interpreter.set_tensor(d["index"], model_layout(q).reshape(d["shape"]))
        self.interpreter.invoke()
        return [unbatched(self.interpreter.get_tensor(d["index"])) for d in self.outputs]

    def run(self, call: list[np.ndarray]) -> list[np.ndarray]:
        return self.run_int8(self.quantized(call))


def unbatched(a: np.ndarray) -> np.ndarray:
    """A model output without its batch axis: `(1, T, 1, C)` -> `(T, C)`, `(1, G)` -> `(G,)`."""
    a = np.array(a)[0]
    return a.reshape(a.shape[0], a.shape[-1]) if a.ndim == 3 else a


def gate_open_above(cfg: MaskConfig, output_quantization: tuple[float, int]) -> int:
    """The int8 `tanh_logit` value above which a gate opens: `q > this` exactly where the float
    rule `(q - zero_point) * scale * logit_bound > threshold_logit` holds."""
    scale, zp = output_quantization
    return math.floor(zp + cfg.gate.threshold_logit / cfg.logit_bound / scale)


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


def read_tflite_stamp(model: bytes) -> dict | None:
    """The contract stamp in a `.tflite` model's metadata, or None where it has none.
    ContractError for bytes that are not a TFLite flatbuffer."""
    from ai_edge_litert import schema_py_generated as schema

    if len(model) < 8 or model[4:8] != b"TFL3":
        raise ContractError("not a TFLite model (no TFL3 identifier)")
    try:
        root = schema.Model.GetRootAs(model, 0)
        for i in range(root.MetadataLength()):
            entry = root.Metadata(i)
            if entry.Name() and entry.Name().decode() == STAMP_METADATA:
                data = root.Buffers(entry.Buffer()).DataAsNumpy()
                return json.loads(bytes(np.asarray(data, np.uint8)).decode())
    except (ValueError, IndexError, TypeError, UnicodeDecodeError, AttributeError) as exc:
        raise ContractError(f"unreadable TFLite metadata ({exc})") from None
    return None


def stamp_tflite(model: bytes, stamp: dict) -> bytes:
    """`model` with `stamp` (JSON) in its metadata under `STAMP_METADATA`, every buffer kept at
    16-byte alignment (the converter's; Python's flatbuffers object API would pack them
    byte-aligned). Operators, tensors and weights are unchanged."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    obj = schema.ModelT.InitFromPackedBuf(bytearray(model), 0)
    obj.metadata = [m for m in (obj.metadata or []) if m.name != STAMP_METADATA.encode()
                    and m.name != STAMP_METADATA]
    data = np.frombuffer(json.dumps(stamp, sort_keys=True).encode(), np.uint8)
    entry = schema.MetadataT()
    entry.name = STAMP_METADATA
    entry.buffer = len(obj.buffers)
    obj.buffers.append(_aligned_buffer(schema, data))
    obj.metadata.append(entry)
    obj.buffers = [_aligned_buffer(schema, b.data) if b.data is not None else b
                   for b in obj.buffers]
    builder = flatbuffers.Builder(len(model) + 4096)
    builder.Finish(obj.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _aligned_buffer(schema, data):
    """A `BufferT` whose bytes pack at `STAMP_ALIGNMENT` (the schema's force_align)."""

    class AlignedBuffer(schema.BufferT):
        def Pack(self, builder):
            raw = np.asarray(self.data, np.uint8).tobytes()
            builder.StartVector(1, len(raw), STAMP_ALIGNMENT)
            builder.head = builder.head - len(raw)
            builder.Bytes[builder.head:builder.head + len(raw)] = raw
            vector = builder.EndVector()
            schema.BufferStart(builder)
            schema.BufferAddData(builder, vector)
            return schema.BufferEnd(builder)

    out = AlignedBuffer()
    out.data = data
    return out

