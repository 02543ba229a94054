"""Generated int8 inference (`firmware_export/codegen.py` + `firmware/core/sm_kernels.c`): the C
of a real export, built with the host gcc, equals TFLite Micro's host interpreter on every output
of real calls and on every layer's output; TFLite's multiplier arithmetic; the arena plan;
refusals by name."""

from __future__ import annotations

import ctypes
import math
import shutil

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from speechmask.api import load_mask
from speechmask.device import float_calls
from speechmask.device.int8 import LiteRT, model_layout
from speechmask.train.data import load_features

from firmware_export.codegen import (CodegenError, Generator, plan_arena, quantize_multiplier,
                                     read_graph)
from firmware_export.csources import CORE
from firmware_export.tflite_int8 import TFLM

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="no host gcc")


@pytest.fixture(scope="module")
def model_lib(export_dir, tmp_path_factory):
    import subprocess

    out = tmp_path_factory.mktemp("model") / "libmodel.so"
    subprocess.run(["gcc", "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-pedantic", "-shared",
                    "-fPIC", "-I", str(export_dir), "-I", str(CORE), "-o", str(out),
                    str(export_dir / "sm_model.c"), str(CORE / "sm_kernels.c")], check=True)
    return ctypes.CDLL(str(out))


def _runtimes(export_dir, mask_path):
    mask = load_mask(mask_path)
    model = (export_dir / "mask.tflite").read_bytes()
    litert = LiteRT(model, mask.cfg)
    report = __import__("json").loads((export_dir / "report.json").read_text())
    return mask, litert, TFLM(model, report["arena_bytes"] + 4096, litert), report


def _compare_call(model_lib, litert, micro, q) -> int:
    """One call of the generated model against TFLite Micro's; the values compared."""
    ref = micro.run_int8(q)
    n_in, n_out = len(litert.in_pos), len(litert.out_pos)
    ins, outs = [None] * n_in, [None] * n_out
    for a, pos in zip(q, litert.in_pos):
        ins[pos] = np.ascontiguousarray(model_layout(a).reshape(-1), np.int8)
    for r, pos in zip(ref, litert.out_pos):
        outs[pos] = np.zeros(r.size, np.int8)
    model_lib.sm_model_invoke((ctypes.c_void_p * n_in)(*[a.ctypes.data for a in ins]),
                              (ctypes.c_void_p * n_out)(*[a.ctypes.data for a in outs]))
    for r, pos in zip(ref, litert.out_pos):
        np.testing.assert_array_equal(outs[pos], model_layout(r).reshape(-1))
    return sum(r.size for r in ref)


def test_generated_model_is_bit_exact_with_tflite_micro(model_lib, export_dir, mask_path,
                                                        tiny_corpus):
    mask, litert, micro, report = _runtimes(export_dir, mask_path)
    fs = load_features(tiny_corpus, mask.cfg.frontend, progress=False)
    compared = 0
    for i in [k for k, r in enumerate(fs.rows) if r["split"] == "test"]:
        for call in float_calls(mask, fs.features[i])[0]:
            compared += _compare_call(model_lib, litert, micro, litert.quantized(call))
    assert compared > 1000
    # the generated arena is smaller than the one TFLite Micro plans for the same model
    assert report["parity"]["generated_arena_bytes"] < report["arena_bytes"]


def test_generated_model_is_bit_exact_on_full_range_inputs(model_lib, export_dir, mask_path):
    """Uniform int8 inputs, extremes included: the fast kernels' bounds (codegen.py,
    `_packed_weights`; sm_kernels.c, `sm_add`) hold for any input, not just speech."""
    mask, litert, micro, _ = _runtimes(export_dir, mask_path)
    rng = np.random.default_rng(7)
    template = litert.quantized(float_calls(mask, np.zeros((40, mask.cfg.frontend.n_mels),
                                                           np.float32))[0][0])
    for trial in range(40):
        q = [rng.integers(-128, 128, a.shape).astype(np.int8) if trial % 4 else
             np.full(a.shape, (-128, 127)[trial % 8 == 0], np.int8) for a in template]
        _compare_call(model_lib, litert, micro, q)


@pytest.mark.parametrize("real,expected", [(0.5, (1 << 30, 0)), (1.0, (1 << 30, 1)),
                                           (0.75, (3 << 29, 0)), (0.0, (0, 0)),
                                           (2.0 ** -40, (0, 0)), (-0.5, (-(1 << 30), 0))])
def test_quantize_multiplier_is_tflites(real, expected):
    assert quantize_multiplier(real) == expected


@given(st.floats(1e-9, 1e3))
def test_quantize_multiplier_represents_the_real(real):
    q, shift = quantize_multiplier(real)
    assert (1 << 30) <= q < (1 << 31)
    assert math.isclose(q * 2.0 ** (shift - 31), real, rel_tol=2 ** -30)


@settings(max_examples=200)
@given(st.lists(st.tuples(st.integers(1, 300), st.integers(0, 20), st.integers(0, 20)),
                min_size=1, max_size=25))
def test_arena_plan_never_overlaps_tensors_alive_together(items):
    sizes = {k: s for k, (s, _, _) in enumerate(items)}
    lifetimes = {k: (min(a, b), max(a, b)) for k, (_, a, b) in enumerate(items)}
    offsets, total = plan_arena(sizes, lifetimes)
    for a in sizes:
        assert offsets[a] % 16 == 0 and offsets[a] + sizes[a] <= total
        for b in sizes:
            together = not (lifetimes[a][1] < lifetimes[b][0] or lifetimes[b][1] < lifetimes[a][0])
            if a < b and together:
                assert offsets[a] + sizes[a] <= offsets[b] or offsets[b] + sizes[b] <= offsets[a]


def test_an_unsupported_operator_is_refused_by_name(export_dir):
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    obj = schema.ModelT.InitFromPackedBuf(bytearray((export_dir / "mask.tflite").read_bytes()), 0)
    tanh = next(c for c in obj.operatorCodes if c.builtinCode == schema.BuiltinOperator.TANH)
    tanh.builtinCode = tanh.deprecatedBuiltinCode = schema.BuiltinOperator.LOGISTIC
    builder = flatbuffers.Builder(1 << 16)
    builder.Finish(obj.Pack(builder), file_identifier=b"TFL3")
    with pytest.raises(CodegenError, match="operator LOGISTIC is not supported"):
        Generator(bytes(builder.Output()))
    tensors, ops, _, _ = read_graph((export_dir / "mask.tflite").read_bytes())
    assert {name for name, *_ in ops} <= {"ADD", "AVERAGE_POOL_2D", "CONCATENATION", "CONV_2D",
                                          "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "MUL", "TANH"}


def test_every_layer_is_bit_exact_with_tflite_micro(export_dir, mask_path, tiny_corpus, tmp_path):
    """The model generated with an unshared arena (every tensor its own bytes) against TFLite
    Micro run with kPreserveAllTensors: each operator's output tensor, on real calls."""
    import subprocess

    from tflite_micro.python.tflite_micro import runtime

    mask = load_mask(mask_path)
    model = (export_dir / "mask.tflite").read_bytes()
    gen = Generator(model, share_arena=False)
    header, source, plan = gen.generate({"contract_version": 1, "export_id": "00000000000000cc"})
    (tmp_path / "sm_model.h").write_text(header)
    (tmp_path / "sm_model.c").write_text(source)
    lib_path = tmp_path / "libmodel.so"
    subprocess.run(["gcc", "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-shared", "-fPIC",
                    "-I", str(tmp_path), "-I", str(CORE), "-o", str(lib_path),
                    str(tmp_path / "sm_model.c"), str(CORE / "sm_kernels.c")], check=True)
    lib = ctypes.CDLL(str(lib_path))
    lib.sm_model_arena.restype = ctypes.POINTER(ctypes.c_int8)
    litert = LiteRT(model, mask.cfg)
    micro = runtime.Interpreter.from_bytes(
        model, arena_size=1 << 20,
        intrepreter_config=runtime.InterpreterConfig.kPreserveAllTensors)
    fs = load_features(tiny_corpus, mask.cfg.frontend, progress=False)
    test = next(k for k, r in enumerate(fs.rows) if r["split"] == "test")
    n_in, n_out = len(gen.inputs), len(gen.outputs)
    layers = 0
    for call in float_calls(mask, fs.features[test])[0][:4]:
        q = litert.quantized(call)
        ins = [None] * n_in
        for a, pos, d in zip(q, litert.in_pos, litert.inputs):
            ins[pos] = np.ascontiguousarray(model_layout(a).reshape(-1), np.int8)
            micro.set_input(ins[pos].reshape(d["shape"]), pos)
        micro.invoke()
        outs = [np.zeros(gen.tensors[o].size, np.int8) for o in gen.outputs]
        lib.sm_model_invoke((ctypes.c_void_p * n_in)(*[a.ctypes.data for a in ins]),
                            (ctypes.c_void_p * n_out)(*[a.ctypes.data for a in outs]))
        arena = np.ctypeslib.as_array(lib.sm_model_arena(), (plan["arena_bytes"],))
        for k, (name, _, op_outs, _) in enumerate(gen.ops):
            t = op_outs[0]
            ref = np.asarray(micro.GetTensor(t, 0)["tensor_data"]).reshape(-1)
            mine = arena[plan["offsets"][t]:plan["offsets"][t] + gen.tensors[t].size]
            np.testing.assert_array_equal(mine, ref, err_msg=f"operator {k} ({name})")
            layers += 1
    assert layers == 4 * len(gen.ops)
