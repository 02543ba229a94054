"""Generated int8 inference: the exported `.tflite` graph as C (`sm_model.h`, `sm_model.c`), one
call of a kernel in `firmware/core/sm_kernels.c` per operator, constant weights and parameters in
flash, every intermediate tensor at an offset of one static arena planned here (tensors whose
lifetimes do not overlap share bytes, as TFLite Micro's planner does).

The requantisation parameters are computed exactly as TFLite Micro computes them at Prepare
(`QuantizeMultiplier` on the double product of the float32 scales), so the C is bit-exact with
its host interpreter (tested). TANH becomes a 256-entry table holding TFLite Micro's own output
for every int8 input, computed here by running it on a one-operator model cut from the graph:
TFLite Micro's int8 TANH is gemmlowp's fixed-point tanh, desktop LiteRT's a table of its own,
and the two differ by an LSB at places. An operator or a quantisation this generator does not
support is refused by name."""

from __future__ import annotations

import math
import struct
import zlib
from dataclasses import dataclass

import numpy as np

from speechmask.errors import SpeechmaskError

from .headers import BANNER

SUPPORTED = ("ADD", "AVERAGE_POOL_2D", "CONCATENATION", "CONV_2D", "DEPTHWISE_CONV_2D",
             "FULLY_CONNECTED", "MUL", "TANH")
ARENA_ALIGN = 16


class CodegenError(SpeechmaskError):
    """A graph the generator cannot turn into C (named operator or quantisation)."""


@dataclass
class Tensor:
    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str
    scales: np.ndarray
    zero_points: np.ndarray
    data: np.ndarray | None  # constant tensors

    @property
    def size(self) -> int:
        return int(np.prod(self.shape)) if self.shape else 1

    @property
    def scale(self) -> float:
        return float(self.scales[0])

    @property
    def zp(self) -> int:
        return int(self.zero_points[0])


#: ADDs of at least this many elements read their scaled inputs from 2 KB tables built in RAM at
#: the first call (sm_add_lut): ~20 instructions an element instead of ~55
ADD_LUT_MIN = 64


def quantize_multiplier(real: float) -> tuple[int, int]:
    """TFLite's QuantizeMultiplier: (Q31 significand, power-of-two exponent) of a double."""
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)
    q_fixed = int(math.floor(abs(q) * (1 << 31) + 0.5)) * (1 if q >= 0 else -1)  # std::round
    if q_fixed == 1 << 31:
        q_fixed //= 2
        shift += 1
    if shift < -31:
        shift, q_fixed = 0, 0
    return q_fixed, shift


def activation_range(fused: int, scale: float, zp: int) -> tuple[int, int]:
    """TFLite's CalculateActivationRangeQuantized for int8: NONE, RELU, RELU_N1_TO_1, RELU6."""
    def q(f: float) -> int:  # zero_point + TfLiteRound(f / scale), in float32
        v = float(np.float32(f) / np.float32(scale))
        return zp + int(math.floor(abs(v) + 0.5)) * (1 if v >= 0 else -1)

    lo, hi = -128, 127
    if fused == 0:
        return lo, hi
    if fused == 1:
        return max(lo, q(0.0)), hi
    if fused == 2:
        return max(lo, q(-1.0)), min(hi, q(1.0))
    if fused == 3:
        return max(lo, q(0.0)), min(hi, q(6.0))
    raise CodegenError(f"fused activation {fused} is not supported")


def read_graph(model: bytes):
    """(tensors by index, operators [(name, inputs, outputs, options)], inputs, outputs) of the
    model's first subgraph."""
    from ai_edge_litert import schema_py_generated as schema

    obj = schema.ModelT.InitFromPackedBuf(bytearray(model), 0)
    if len(obj.subgraphs) != 1:
        raise CodegenError(f"the model has {len(obj.subgraphs)} subgraphs; one is supported")
    graph = obj.subgraphs[0]
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    types = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    tensors = {}
    for i, t in enumerate(graph.tensors):
        q = t.quantization
        buf = obj.buffers[t.buffer].data if t.buffer < len(obj.buffers) else None
        dtype = types[t.type]
        data = None
        if buf is not None and len(buf):
            np_type = {"INT8": np.int8, "INT32": np.int32, "UINT8": np.uint8,
                       "INT16": np.int16, "FLOAT32": np.float32}.get(dtype)
            if np_type is None:
                raise CodegenError(f"tensor {t.name!r}: constant of type {dtype} is not supported")
            data = np.frombuffer(bytes(np.asarray(buf, np.uint8)), np_type)
        tensors[i] = Tensor(i, t.name.decode() if isinstance(t.name, bytes) else str(t.name),
                            tuple(int(d) for d in (t.shape if t.shape is not None else ())),
                            dtype,
                            np.asarray(q.scale if q is not None and q.scale is not None else [0.0],
                                       np.float32),
                            np.asarray(q.zeroPoint if q is not None and q.zeroPoint is not None
                                       else [0], np.int64), data)
    ops = []
    for op in graph.operators:
        code = obj.operatorCodes[op.opcodeIndex]
        builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
        name = names.get(builtin, f"builtin {builtin}")
        if name not in SUPPORTED:
            raise CodegenError(f"operator {name} is not supported by the C generator (supported: "
                               f"{', '.join(SUPPORTED)})")
        ops.append((name, [int(i) for i in op.inputs], [int(i) for i in op.outputs],
                    op.builtinOptions))
    return tensors, ops, [int(i) for i in graph.inputs], [int(i) for i in graph.outputs]


def plan_arena(sizes: dict[int, int], lifetimes: dict[int, tuple[int, int]]) -> tuple[dict, int]:
    """Offsets for tensors alive over [first, last] operator steps: the largest first, each at
    the lowest `ARENA_ALIGN`-aligned offset where it overlaps no placed tensor alive at the same
    time. Returns ({tensor: offset}, arena bytes)."""
    placed: dict[int, int] = {}
    for t in sorted(sizes, key=lambda k: (-sizes[k], k)):
        a0, a1 = lifetimes[t]
        busy = sorted((placed[o], placed[o] + sizes[o]) for o in placed
                      if not (lifetimes[o][1] < a0 or a1 < lifetimes[o][0]))
        offset = 0
        for lo, hi in busy:
            if offset + sizes[t] <= lo:
                break
            offset = max(offset, -(-hi // ARENA_ALIGN) * ARENA_ALIGN)
        placed[t] = offset
    return placed, max((placed[t] + sizes[t] for t in placed), default=0)


def tflm_unary_table(model: bytes, op_input: int, op_output: int, op_index: int) -> np.ndarray:
    """TFLite Micro's int8 output for each of the 256 inputs of operator `op_index`, run alone
    on a model cut from `model` (its other operators and every constant dropped)."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema
    from tflite_micro.python.tflite_micro import runtime

    obj = schema.ModelT.InitFromPackedBuf(bytearray(model), 0)
    graph = obj.subgraphs[0]
    graph.operators = [graph.operators[op_index]]
    graph.inputs, graph.outputs = [op_input], [op_output]
    obj.signatureDefs, obj.metadata = None, None
    for b in obj.buffers:
        b.data = None
    builder = flatbuffers.Builder(1 << 16)
    builder.Finish(obj.Pack(builder), file_identifier=b"TFL3")
    interpreter = runtime.Interpreter.from_bytes(bytes(builder.Output()), arena_size=1 << 16)
    shape = [int(d) for d in graph.tensors[op_input].shape]
    table = np.zeros(256, np.int8)
    for v in range(-128, 128):
        interpreter.set_input(np.full(shape, v, np.int8), 0)
        interpreter.invoke()
        table[v + 128] = np.asarray(interpreter.get_output(0)).reshape(-1)[0]
    return table


BLOB_HEADER = struct.Struct("<4sIQIIII")  # magic, format, export id, contract, bytes, crc, 0
BLOB_FORMAT = 1


def model_blob(payload: bytes, stamp: dict) -> bytes:
    """The model blob (`model.blob`): header, then the constants (see sm_model.h)."""
    head = BLOB_HEADER.pack(b"SMMD", BLOB_FORMAT, int(str(stamp["export_id"]), 16),
                            int(stamp["contract_version"]), len(payload), zlib.crc32(payload), 0)
    return head + payload


def _bytes_c(data: bytes, per_line: int = 24) -> str:
    return "".join("    " + ", ".join(str(b) for b in data[i:i + per_line]) + ",\n"
                   for i in range(0, len(data), per_line))


class Generator:
    """Turns the graph into C. `model`: the `.tflite` bytes (TANH's tables run TFLite Micro on
    it)."""

    def __init__(self, model: bytes, share_arena: bool = True):
        self.model, self.share_arena = model, share_arena
        self.tensors, self.ops, self.inputs, self.outputs = read_graph(model)
        self.consts: list[str] = []
        self.calls: list[str] = []
        self.inits: list[str] = []  # run once, at the first call (tables built in RAM)
        self.emitted: set[str] = set()
        self.blobs: list[tuple[str, bytes]] = []  # every constant array, in blob order
        self.blob_size = 0

    # -- tensors -----------------------------------------------------------------------------
    def _act(self, i: int) -> Tensor:
        t = self.tensors[i]
        if t.dtype != "INT8":
            raise CodegenError(f"tensor {t.name!r} is {t.dtype}; the generator runs int8 "
                               "activations only")
        if t.scales.size != 1:
            raise CodegenError(f"tensor {t.name!r}: per-channel activations are not supported")
        return t

    def _ptr(self, i: int) -> str:
        if i in self.inputs:
            return f"in[{self.inputs.index(i)}]"
        if self.tensors[i].data is not None:
            return self._const(i)
        return f"(arena + {self.offsets[i]})"

    def _const(self, i: int, ctype: str | None = None) -> str:
        t = self.tensors[i]
        name = f"sm_t{i}"
        if name not in self.emitted:
            ctype = ctype or {"INT8": "int8_t", "INT32": "int32_t"}.get(t.dtype)
            if ctype is None:
                raise CodegenError(f"tensor {t.name!r}: constant of type {t.dtype}")
            self._array(ctype, name, t.data, 16)
            self.emitted.add(name)
        return name

    def _params(self, name: str, ctype: str, values) -> str:
        self._array(ctype, name, values, 8)
        return name

    def _array(self, ctype: str, name: str, values, per_line: int) -> None:
        """A constant array: its bytes (little-endian, as both the host and the Cortex-M7 hold
        them) at a 4-byte aligned offset of the model blob, and a macro in sm_model.c that reads
        it from the active blob (built in, or uploaded: sm_model_use)."""
        dtype = {"int8_t": "<i1", "int16_t": "<i2", "int32_t": "<i4", "uint8_t": "<u1"}[ctype]
        data = np.asarray(values).astype(dtype).tobytes()
        self.blob_size += -self.blob_size % 4
        self.consts.append(f"#define {name} ((const {ctype} *)(sm_data + {self.blob_size})) "
                           f"/* {len(data)} B */\n")
        self.blobs.append((name, data))
        self.blob_size += len(data)

    def _payload(self) -> bytes:
        out = bytearray()
        for _, data in self.blobs:
            out += bytes(-len(out) % 4) + data
        return bytes(out)

    # -- operators ---------------------------------------------------------------------------
    def _conv(self, k: int, kind: str, ins: list[int], out: int, opt) -> None:
        x, w, o = self._act(ins[0]), self.tensors[ins[1]], self._act(out)
        bias = ins[2] if len(ins) > 2 and ins[2] >= 0 else None
        if w.data is None or w.dtype != "INT8" or np.any(w.zero_points != 0):
            raise CodegenError(f"{kind} {k}: weights must be constant int8 with zero point 0")
        out_c = o.shape[3]
        if w.scales.size not in (1, out_c):
            raise CodegenError(f"{kind} {k}: {w.scales.size} weight scales for {out_c} channels")
        scales = np.broadcast_to(w.scales, (out_c,))
        mults, shifts = zip(*(quantize_multiplier(float(x.scales[0]) * float(s)
                                                  / float(o.scales[0])) for s in scales))
        k_h, k_w = (w.shape[1], w.shape[2])
        dil_h, dil_w = opt.dilationHFactor, opt.dilationWFactor
        pads = [self._pad(x.shape[1 + d], kk, st, dl, o.shape[1 + d], opt.padding)
                for d, (kk, st, dl) in enumerate(((k_h, opt.strideH, dil_h),
                                                  (k_w, opt.strideW, dil_w)))]
        lo, hi = activation_range(opt.fusedActivationFunction, o.scale, o.zp)
        depth_mult = getattr(opt, "depthMultiplier", 1) or 1
        self.consts.append(
            f"static const sm_conv_t sm_p{k} = {{{x.shape[1]}, {x.shape[2]}, {x.shape[3]}, "
            f"{o.shape[1]}, {o.shape[2]}, {out_c}, {k_h}, {k_w}, {opt.strideH}, {opt.strideW}, "
            f"{dil_h}, {dil_w}, {pads[0]}, {pads[1]}, {depth_mult}, {-x.zp}, {o.zp}, {lo}, "
            f"{hi}}};\n")
        m = self._params(f"sm_m{k}", "int32_t", mults)
        fn = "sm_conv2d" if kind == "CONV_2D" else "sm_depthwise_conv2d"
        if pads == [0, 0]:  # every tap inside: fold the input offset into the bias
            weights = w.data.reshape(w.shape).astype(np.int64)
            axes = (1, 2, 3) if kind == "CONV_2D" else (0, 1, 2)
            base = self.tensors[bias].data.astype(np.int64) if bias is not None else 0
            bias_eff = base + (-x.zp) * weights.sum(axis=axes)
            b = self._params(f"sm_be{k}", "int32_t", bias_eff)
            # the largest |accumulator| of each channel, for any int8 input
            acc_max = np.abs(bias_eff) + 128 * np.abs(weights).sum(axis=axes)
            packed = self._packed_weights(kind, weights, x.shape[3], out_c, (opt.strideH,
                                          opt.strideW), depth_mult, acc_max, shifts)
            if packed is not None:
                self._array("int16_t", f"sm_w{k}", packed, 16)
                r = self._params(f"sm_r{k}", "int32_t", [-sh for sh in shifts])
                self.calls.append(f"{fn}{'_1x1' if kind == 'CONV_2D' else ''}_s16(&sm_p{k}, "
                                  f"{self._ptr(ins[0])}, sm_w{k}, {b}, {m}, {r}, "
                                  f"{self._ptr(out)});")
                return
            fn += "_valid"
        else:
            b = self._const(bias) if bias is not None else "0"
        s = self._params(f"sm_s{k}", "int32_t", shifts)
        self.calls.append(f"{fn}(&sm_p{k}, {self._ptr(ins[0])}, {self._const(ins[1])}, {b}, "
                          f"{m}, {s}, {self._ptr(out)});")

    @staticmethod
    def _packed_weights(kind: str, weights: np.ndarray, in_c: int, out_c: int, strides,
                        depth_mult: int, acc_max: np.ndarray, shifts) -> np.ndarray | None:
        """int16 weights in the DSP kernels' packed order (sm_kernels.h), or None where the layer
        needs the general kernel: another shape, a left shift, or an accumulator that could leave
        the range where the short requantisation is exact (sm_kernels.c, `requant_right`)."""
        right = -np.asarray(shifts, dtype=np.int64)
        if (out_c % 4 or np.any(right < 1) or np.any(acc_max >= 2 ** 30)
                or np.any(acc_max + (1 << (right - 1)) >= 2 ** 31)):
            return None
        order = [0, 2, 1, 3]  # SXTB16 lanes: (0, 2) then (1, 3)
        if kind == "CONV_2D":
            if weights.shape[1:3] != (1, 1) or tuple(strides) != (1, 1) or in_c % 4:
                return None
            w = weights.reshape(out_c // 4, 4, in_c // 4, 4)[..., order]  # [g][j][i][lane]
            return w.transpose(0, 2, 1, 3).reshape(-1).astype(np.int16)
        if depth_mult != 1:
            return None
        k_h, k_w = weights.shape[1:3]
        return weights.reshape(k_h, k_w, out_c // 4, 4)[..., order].reshape(-1).astype(np.int16)

    @staticmethod
    def _pad(in_size: int, k: int, stride: int, dil: int, out_size: int, padding: int) -> int:
        if padding == 1:  # VALID
            return 0
        total = (out_size - 1) * stride + (k - 1) * dil + 1 - in_size
        return max(0, total) // 2

    def _fully_connected(self, k: int, ins: list[int], out: int, opt) -> None:
        x, w, o = self._act(ins[0]), self.tensors[ins[1]], self._act(out)
        if w.data is None or w.dtype != "INT8" or w.scales.size != 1:
            raise CodegenError(f"FULLY_CONNECTED {k}: weights must be constant int8, per-tensor")
        units, depth = w.shape
        mult, shift = quantize_multiplier(float(x.scales[0]) * float(w.scales[0])
                                          / float(o.scales[0]))
        lo, hi = activation_range(opt.fusedActivationFunction, o.scale, o.zp)
        b = self._const(ins[2]) if len(ins) > 2 and ins[2] >= 0 else "0"
        self.calls.append(f"sm_fully_connected({x.size // depth}, {depth}, {units}, "
                          f"{self._ptr(ins[0])}, {self._const(ins[1])}, {b}, {-x.zp}, {-w.zp}, "
                          f"{o.zp}, {mult}, {shift}, {lo}, {hi}, {self._ptr(out)});")

    def _binary(self, k: int, name: str, ins: list[int], out: int, opt) -> tuple:
        a, b, o = self._act(ins[0]), self._act(ins[1]), self._act(out)
        if b.size not in (1, a.size) or o.size != a.size:
            raise CodegenError(f"{name} {k}: broadcasting {a.shape} with {b.shape} is not "
                               "supported (same shapes or a single element)")
        lo, hi = activation_range(opt.fusedActivationFunction, o.scale, o.zp)
        return a, b, o, lo, hi

    def _add(self, k: int, ins: list[int], out: int, opt) -> None:
        a, b, o, lo, hi = self._binary(k, "ADD", ins, out, opt)
        left = 20
        twice = 2 * float(max(a.scales[0], b.scales[0]))
        m1, s1 = quantize_multiplier(float(a.scales[0]) / twice)
        m2, s2 = quantize_multiplier(float(b.scales[0]) / twice)
        mo, so = quantize_multiplier(twice / ((1 << left) * float(o.scales[0])))
        if max(s1, s2, so) > 0:  # sm_add's arithmetic relies on this (and on left = 20)
            raise CodegenError(f"ADD {k}: a multiplier above one")
        self.consts.append(f"static const sm_add_t sm_p{k} = {{{-a.zp}, {-b.zp}, {o.zp}, {left}, "
                           f"{m1}, {s1}, {m2}, {s2}, {mo}, {so}, {lo}, {hi}}};\n")
        if a.size >= ADD_LUT_MIN:  # each input's scaled value from a table built at the first call
            self.consts.append(f"static int32_t sm_lut{k}[512]; /* 2 KB of RAM */\n")
            self.inits.append(f"sm_add_lut_init(&sm_p{k}, sm_lut{k});")
            self.calls.append(f"sm_add_lut(&sm_p{k}, sm_lut{k}, {a.size}, {self._ptr(ins[0])}, "
                              f"{self._ptr(ins[1])}, {b.size}, {self._ptr(out)});")
            return
        self.calls.append(f"sm_add(&sm_p{k}, {a.size}, {self._ptr(ins[0])}, "
                          f"{self._ptr(ins[1])}, {b.size}, {self._ptr(out)});")

    def _mul(self, k: int, ins: list[int], out: int, opt) -> None:
        a, b, o, lo, hi = self._binary(k, "MUL", ins, out, opt)
        mult, shift = quantize_multiplier(float(a.scales[0]) * float(b.scales[0])
                                          / float(o.scales[0]))
        self.calls.append(f"sm_mul({a.size}, {self._ptr(ins[0])}, {self._ptr(ins[1])}, {b.size}, "
                          f"{-a.zp}, {-b.zp}, {o.zp}, {mult}, {shift}, {lo}, {hi}, "
                          f"{self._ptr(out)});")

    def _pool(self, k: int, ins: list[int], out: int, opt) -> None:
        x, o = self._act(ins[0]), self._act(out)
        if x.scale != o.scale or x.zp != o.zp:
            raise CodegenError(f"AVERAGE_POOL_2D {k}: input and output quantization differ")
        lo, hi = activation_range(opt.fusedActivationFunction, o.scale, o.zp)
        pad_h = self._pad(x.shape[1], opt.filterHeight, opt.strideH, 1, o.shape[1], opt.padding)
        pad_w = self._pad(x.shape[2], opt.filterWidth, opt.strideW, 1, o.shape[2], opt.padding)
        self.calls.append(f"sm_average_pool({x.shape[1]}, {x.shape[2]}, {x.shape[3]}, "
                          f"{o.shape[1]}, {o.shape[2]}, {opt.filterHeight}, {opt.filterWidth}, "
                          f"{opt.strideH}, {opt.strideW}, {pad_h}, {pad_w}, {lo}, {hi}, "
                          f"{self._ptr(ins[0])}, {self._ptr(out)});")

    def _concat(self, k: int, ins: list[int], out: int, opt) -> None:
        o = self._act(out)
        for i in ins:
            t = self._act(i)
            if t.scale != o.scale or t.zp != o.zp:
                raise CodegenError(f"CONCATENATION {k}: input {t.name!r} is quantized "
                                   f"({t.scale}, {t.zp}), the output ({o.scale}, {o.zp})")
        if opt.fusedActivationFunction:
            raise CodegenError(f"CONCATENATION {k}: a fused activation is not supported")
        axis = opt.axis % len(o.shape)
        outer = int(np.prod(o.shape[:axis]))
        inner = [int(np.prod(self.tensors[i].shape[axis:])) for i in ins]
        self._params(f"sm_inner{k}", "int32_t", inner)
        self.calls.append("{ const int8_t *const src[] = {"
                          + ", ".join(self._ptr(i) for i in ins)
                          + f"}}; sm_concat({len(ins)}, src, sm_inner{k}, {outer}, "
                          f"{self._ptr(out)}); }}")

    def _tanh(self, k: int, ins: list[int], out: int) -> None:
        x = self._act(ins[0])
        self._act(out)
        table = tflm_unary_table(self.model, ins[0], out, k)
        self._params(f"sm_table{k}", "int8_t", table)
        self.calls.append(f"sm_lookup({x.size}, {self._ptr(ins[0])}, sm_table{k}, "
                          f"{self._ptr(out)});")

    def _plan_comment(self, sizes: dict, lifetimes: dict) -> str:
        """The memory plan as a comment: each intermediate tensor's offset, bytes and the
        operators between which it lives (written by the first, last read by the second)."""
        rows = [f" *   {self.offsets[t]:6d} {sizes[t]:6d}   {lifetimes[t][0]:3d}-"
                f"{lifetimes[t][1]:<3d}  {self.tensors[t].name[:48].replace('*/', '* /')}"
                for t in sorted(sizes, key=lambda k: (self.offsets[k], lifetimes[k]))]
        return ("/* Memory plan (computed at export): offset, bytes, live from operator to\n"
                " * operator (the number of operators: the call's end), tensor.\n"
                + "\n".join(rows) + "\n */\n")

    # -- the whole ---------------------------------------------------------------------------
    def generate(self, stamp: dict) -> tuple[str, str, dict]:
        """(`sm_model.h`, `sm_model.c`, plan: arena bytes, offsets, constant bytes)."""
        produced = {o: k for k, (_, _, outs, _) in enumerate(self.ops) for o in outs}
        last = {}
        for k, (_, ins, _, _) in enumerate(self.ops):
            for i in ins:
                if i in produced:
                    last[i] = k
        for o in self.outputs:
            last[o] = len(self.ops)
        sizes = {t: self.tensors[t].size for t in produced}
        lifetimes = {t: (produced[t], last.get(t, produced[t])) for t in produced}
        if self.share_arena:
            self.offsets, arena = plan_arena(sizes, lifetimes)
        else:  # every tensor its own bytes: all layers' outputs readable after a call (tests)
            self.offsets, arena = plan_arena(sizes, {t: (0, 0) for t in sizes})
        live = [sum(sizes[t] for t in sizes if lifetimes[t][0] <= k <= lifetimes[t][1])
                for k in range(len(self.ops))]
        peak = int(np.argmax(live)) if live else 0
        for k, (name, ins, outs, opt) in enumerate(self.ops):
            if name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
                self._conv(k, name, ins, outs[0], opt)
            elif name == "FULLY_CONNECTED":
                self._fully_connected(k, ins, outs[0], opt)
            elif name == "ADD":
                self._add(k, ins, outs[0], opt)
            elif name == "MUL":
                self._mul(k, ins, outs[0], opt)
            elif name == "AVERAGE_POOL_2D":
                self._pool(k, ins, outs[0], opt)
            elif name == "CONCATENATION":
                self._concat(k, ins, outs[0], opt)
            elif name == "TANH":
                self._tanh(k, ins, outs[0])
        for i in self.inputs + self.outputs:
            self._act(i)
        in_bytes = [self.tensors[i].size for i in self.inputs]
        out_bytes = [self.tensors[o].size for o in self.outputs]
        payload = self._payload()
        crc = zlib.crc32(payload)
        blob = model_blob(payload, stamp)
        header = "".join([
            BANNER, "#ifndef SM_MODEL_H\n#define SM_MODEL_H\n\n#include <stdint.h>\n\n",
            "/* the export this model comes from (sm_device.c refuses to build with the headers\n"
            " * of another) */\n",
            f"#define SM_MODEL_CONTRACT_VERSION {int(stamp['contract_version'])}\n",
            f"#define SM_MODEL_EXPORT_ID_U64 0x{stamp['export_id']}ULL\n",
            f"#define SM_MODEL_CRC32 0x{crc:08x}u /* CRC-32 (IEEE) of the blob's constants */\n",
            f"#define SM_MODEL_BLOB_BYTES {len(blob)} /* header {BLOB_HEADER.size} B + constants "
            f"{len(payload)} B */\n",
            f"#define SM_MODEL_N_INPUTS {len(self.inputs)}\n",
            f"#define SM_MODEL_N_OUTPUTS {len(self.outputs)}\n",
            f"#define SM_MODEL_ARENA_BYTES {arena}\n",
            self._plan_comment(sizes, lifetimes),
            f"#define SM_MODEL_INPUT_BYTES {{{', '.join(map(str, in_bytes))}}}\n",
            f"#define SM_MODEL_OUTPUT_BYTES {{{', '.join(map(str, out_bytes))}}}\n",
            f"#define SM_MODEL_INPUT_TOTAL {sum(in_bytes)}\n",
            f"#define SM_MODEL_OUTPUT_TOTAL {sum(out_bytes)}\n\n",
            "/* One call of the exported graph: int8 inputs and outputs in the .tflite model's\n"
            " * order (TFLite Micro's input and output indices), each a contiguous NHWC tensor.\n"
            " * Intermediate tensors live in one static arena of SM_MODEL_ARENA_BYTES. */\n",
            "void sm_model_invoke(const int8_t *const in[SM_MODEL_N_INPUTS],\n"
            "                     int8_t *const out[SM_MODEL_N_OUTPUTS]);\n\n"
            "/* At boot: 0 if the active model's constants still have the CRC-32 the export\n"
            " * computed, -1 if not (corrupt flash or a bad image: do not run the model). */\n"
            "int sm_model_check(void);\n\n"
            "/* Builds the tables the model keeps in RAM (sm_add_lut's); run once at boot, else the\n"
            " * first sm_model_invoke runs it. */\n"
            "void sm_model_init(void);\n\n"
            "/* The model's constants as one blob (model.blob in the export): a 32-byte header\n"
            " * (magic \"SMMD\", format 1, export id u64, contract version, constants' bytes and\n"
            " * CRC-32, little-endian) and the constants. sm_model_use makes `blob` (4-byte\n"
            " * aligned, kept in place) the active model if its header names this export and\n"
            " * its CRC holds: 0; else the active model stays: -1 malformed, -2 another export,\n"
            " * -3 CRC mismatch. */\n"
            "int sm_model_use(const uint8_t *blob, uint32_t bytes);\n"
            "const uint8_t *sm_model_builtin_blob(void);\n\n"
            "/* The arena (intermediate tensors at the offsets of the export's plan). */\n"
            "const int8_t *sm_model_arena(void);\n\n#endif\n"])
        check = (
            f"\nstatic const uint8_t sm_builtin[{len(blob)}] __attribute__((aligned(8))) = {{\n"
            + _bytes_c(blob) + "};\n"
            f"static const uint8_t *sm_data = sm_builtin + {BLOB_HEADER.size};\n\n"
            "/* CRC-32 (IEEE 802.3, reflected, as zlib's), bitwise: run at boot and on upload. */\n"
            "static uint32_t crc32(const uint8_t *p, uint32_t n) {\n"
            "    uint32_t crc = 0xFFFFFFFFu;\n"
            "    for (uint32_t i = 0; i < n; i++) {\n"
            "        crc ^= p[i];\n"
            "        for (int b = 0; b < 8; b++) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));\n"
            "    }\n"
            "    return crc ^ 0xFFFFFFFFu;\n"
            "}\n\n"
            "static uint32_t le32(const uint8_t *p) {\n"
            "    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;\n"
            "}\n\n"
            "int sm_model_check(void) {\n"
            f"    return crc32(sm_data, {len(payload)}u) == SM_MODEL_CRC32 ? 0 : -1;\n"
            "}\n\n"
            "int sm_model_use(const uint8_t *blob, uint32_t bytes) {\n"
            "    static const uint8_t magic[4] = {'S', 'M', 'M', 'D'};\n"
            f"    if (bytes != SM_MODEL_BLOB_BYTES || memcmp(blob, magic, 4) != 0 || le32(blob + 4) != {BLOB_FORMAT} ||\n"
            "        ((uintptr_t)blob & 3u) != 0)\n"
            "        return -1;\n"
            "    const uint64_t id = (uint64_t)le32(blob + 8) | (uint64_t)le32(blob + 12) << 32;\n"
            "    if (id != SM_MODEL_EXPORT_ID_U64 || le32(blob + 16) != SM_MODEL_CONTRACT_VERSION ||\n"
            f"        le32(blob + 20) != {len(payload)}u)\n"
            "        return -2;\n"
            f"    if (le32(blob + 24) != SM_MODEL_CRC32 || crc32(blob + {BLOB_HEADER.size}, {len(payload)}u) != SM_MODEL_CRC32)\n"
            "        return -3;\n"
            f"    sm_data = blob + {BLOB_HEADER.size};\n"
            "    return 0;\n"
            "}\n\n"
            "const uint8_t *sm_model_builtin_blob(void) { return sm_builtin; }\n")
        copies = [f"memcpy(out[{j}], {self._ptr(o)}, {self.tensors[o].size});"
                  for j, o in enumerate(self.outputs)]
        source = "".join([
            BANNER, '#include "sm_model.h"\n\n#include <string.h>\n\n#include "sm_kernels.h"\n\n',
            f"static int8_t arena[{max(arena, 1)}] __attribute__((aligned({ARENA_ALIGN})));\n\n",
            "/* the constants: views into the active blob (sm_data, below) */\n",
            "static const uint8_t *sm_data;\n",
            *self.consts,
            "\nstatic int8_t sm_ready;\n\nvoid sm_model_init(void) {\n",
            *(f"    {c}\n" for c in self.inits), "    sm_ready = 1;\n}\n",
            "\nvoid sm_model_invoke(const int8_t *const in[SM_MODEL_N_INPUTS],\n"
            "                     int8_t *const out[SM_MODEL_N_OUTPUTS]) {\n",
            "    if (!sm_ready) sm_model_init();\n",
            *(f"    {c}\n" for c in self.calls + copies), "}\n", check,
            "\nconst int8_t *sm_model_arena(void) { return arena; }\n"])
        const_bytes = sum(t.data.nbytes for t in self.tensors.values() if t.data is not None)
        return header, source, {"arena_bytes": arena, "offsets": self.offsets,
                                "peak": {"operator": peak, "name": self.ops[peak][0] if self.ops
                                         else None, "live_bytes": live[peak] if live else 0},
                                "constant_bytes": const_bytes, "blob": blob,
                                "operators": [op[0] for op in self.ops]}
