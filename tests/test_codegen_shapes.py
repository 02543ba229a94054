"""The generated C on layer shapes the default mask does not use, against TensorFlow Lite Micro's
host interpreter bit for bit: SAME padding (the general CONV_2D, DEPTHWISE_CONV_2D and
AVERAGE_POOL_2D kernels), a depth multiplier of 2, a strided 1x1 convolution (the unpadded general
kernel), a 1x1 convolution and a dilated depthwise one that take the DSP kernels, channels that
are and are not multiples of 4, and an ADD read from its tables. A small Keras model, converted to
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
    x4 = k.DepthwiseConv2D((3, 1), dilation_rate=(2, 1))(x3)  # unpadded, dilated: the DSP kernel
    x5 = k.Conv2D(8, (5, 1), strides=(1, 1))(x3)  # unpadded, 5x1: the general unpadded kernel
    x6 = k.Add()([x4, x5])  # 4 x 6 x 8 = 192 elements: the table form
    out = k.AveragePooling2D((3, 2), strides=(2, 2), padding="same")(x6)
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


def test_general_and_dsp_kernels_are_bit_exact_with_tflite_micro(tmp_path):
    from tflite_micro.python.tflite_micro import runtime

    model = _model()
    header, source, plan = Generator(model).generate(STAMP)
    assert {"CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "AVERAGE_POOL_2D"} <= set(plan["operators"])
    # both kinds of kernel are in the generated code
    for name in ("sm_conv2d(", "sm_depthwise_conv2d(", "sm_conv2d_1x1_s16(",
                 "sm_depthwise_conv2d_s16(", "sm_conv2d_valid(", "sm_add_lut("):
        assert name in source, name
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
