"""The generated C on layer shapes the default mask does not use, against TensorFlow Lite Micro's
host interpreter bit for bit: SAME padding (the general CONV_2D, DEPTHWISE_CONV_2D and
AVERAGE_POOL_2D kernels), a depth multiplier of 2, a 5x1 and a strided 1x1 convolution (the
unpadded general kernel), a 1x1 convolution and a dilated and a strided depthwise one that take
the DSP kernels, channels that are and are not multiples of 4, and ADDs read from their tables,
one broadcasting a constant. A small Keras model, converted to
full int8 by TFLite's converter, random int8 inputs over the whole range."""

from __future__ import annotations

import ctypes
import shutil
import subprocess

import numpy as np
import pytest

from firmware_export.codegen import Generator
from firmware_export.csources import CORE

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="no host gcc")

STAMP = {"contract_version": 1, "export_id": "00000000000000aa"}


def _model() -> bytes:
    import tensorflow as tf

    k = tf.keras.layers
    inp = tf.keras.Input((8, 6, 5), batch_size=1)
    x1 = k.Conv2D(6, (3, 3), padding="same", activation="relu")(inp)  # general, padded
    x2 = k.DepthwiseConv2D((3, 3), padding="same", depth_multiplier=2)(x1)  # general, 12 ch
    x3 = k.Conv2D(8, 1)(x2)  # 1x1, 12 -> 8: the DSP kernel
    x4 = k.DepthwiseConv2D((3, 1), dilation_rate=(2, 1))(x3)  # unpadded, dilated: DSP kernel
    x5 = k.Conv2D(8, (5, 1))(x3)  # unpadded 5x1: the general unpadded kernel
    x6 = k.DepthwiseConv2D((2, 1), strides=(2, 1))(x3)  # strided: the DSP kernel's stride
    x7 = k.Conv2D(8, 1, strides=(2, 1))(x3)  # a strided 1x1: the general unpadded kernel
    x8 = k.Add()([k.Add()([x4, x5]), k.Add()([x6, x7])])  # 4 x 6 x 8 = 192: the table form
    x9 = k.Lambda(lambda t: t + 0.5)(x8)  # a broadcast ADD of one constant: tables too
    out = k.AveragePooling2D((3, 2), strides=(2, 2), padding="same")(x9)
    model = tf.keras.Model(inp, out)
    rng = np.random.default_rng(0)
    for w in model.weights:  # varied weights, so that every channel's scale differs
        w.assign(rng.normal(0, 0.5, w.shape).astype(np.float32))

    def representative():
        for _ in range(32):
            yield [rng.normal(0, 1, (1, 8, 6, 5)).astype(np.float32)]

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = representative
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    return conv.convert()


def test_packed_weights_fall_back_to_the_general_kernel():
    """The DSP form only where its bounds and shapes hold (codegen.py, `_packed_weights`)."""
    w = np.ones((8, 1, 1, 8), np.int64)
    acc = np.full(8, 1000)
    args = ("CONV_2D", w, 8, 8, (1, 1), 1)
    assert Generator._packed_weights(*args, acc, [-5] * 8) is not None
    assert Generator._packed_weights(*args, acc, [-5] * 7 + [0]) is None  # no right shift
    assert Generator._packed_weights(*args, acc, [-5] * 7 + [1]) is None  # a left shift
    assert Generator._packed_weights(*args, np.full(8, 1 << 30), [-5] * 8) is None  # |acc|
    assert Generator._packed_weights(*args, np.full(8, (1 << 31) - 8), [-5] * 8) is None
    assert Generator._packed_weights("CONV_2D", w, 8, 8, (2, 1), 1, acc, [-5] * 8) is None
    assert Generator._packed_weights("CONV_2D", w[:6], 8, 6, (1, 1), 1, acc[:6],
                                     [-5] * 6) is None  # channels not in fours
    assert Generator._packed_weights("DEPTHWISE_CONV_2D", np.ones((1, 3, 1, 8), np.int64), 8,
                                     8, (1, 1), 2, acc, [-5] * 8) is None  # depth multiplier


def test_general_and_dsp_kernels_are_bit_exact_with_tflite_micro(tmp_path):
    from tflite_micro.python.tflite_micro import runtime

    model = _model()
    header, source, plan = Generator(model).generate(STAMP)
    assert {"CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "AVERAGE_POOL_2D"} <= set(plan["operators"])
    # both kinds of kernel are in the generated code
    for name in ("sm_conv2d(", "sm_depthwise_conv2d(", "sm_conv2d_1x1_s16(",
                 "sm_depthwise_conv2d_s16(", "sm_conv2d_valid(", "sm_add_lut("):
        assert name in source, name
    assert source.count("sm_add_lut(&") == 4 and source.count("sm_conv2d_valid(") == 2
    (tmp_path / "sm_model.h").write_text(header)
    (tmp_path / "sm_model.c").write_text(source)
    lib = tmp_path / "libmodel.so"
    subprocess.run(["gcc", "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-pedantic",
                    "-shared", "-fPIC", "-I", str(tmp_path), "-I", str(CORE), "-o", str(lib),
                    str(tmp_path / "sm_model.c"), str(CORE / "sm_kernels.c")], check=True)
    c = ctypes.CDLL(str(lib))
    micro = runtime.Interpreter.from_bytes(model, arena_size=1 << 16)
    rng = np.random.default_rng(1)
    for trial in range(30):
        x = (rng.integers(-128, 128, (1, 8, 6, 5)) if trial % 5 else
             np.full((1, 8, 6, 5), (-128, 127)[trial % 10 == 0])).astype(np.int8)
        micro.set_input(x, 0)
        micro.invoke()
        ref = micro.get_output(0)
        out = np.zeros(ref.size, np.int8)
        xin = np.ascontiguousarray(x.reshape(-1))
        c.sm_model_invoke((ctypes.c_void_p * 1)(xin.ctypes.data),
                          (ctypes.c_void_p * 1)(out.ctypes.data))
        np.testing.assert_array_equal(out, ref.reshape(-1))
