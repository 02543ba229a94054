"""The Keras twin of `streaming.StreamingCall`, built layer by layer from the PyTorch weights.

How PyTorch reaches TensorFlow: every architecture the trainer offers (`tiny`, `small`) is
rebuilt here from standard Keras layers whose TFLite kernels TFLite Micro has (CONV_2D,
DEPTHWISE_CONV_2D, FULLY_CONNECTED, PAD, MUL, ADD, AVERAGE_POOL_2D, TANH, RESHAPE, ...), and the
weights are copied over. A generic graph translator (onnx2tf) pins an older TensorFlow than this
project's, and litert-torch's dependencies break Flower's; a rebuild per architecture is small,
and the float twin is checked against PyTorch before anything is quantized.
"""

from __future__ import annotations

import numpy as np

from speechmask.errors import ConfigError
from speechmask.models.mask import MaskGenerator

from .streaming import StreamingCall

INPUTS = ("frames", "valid", "state")


def build_keras(mask: MaskGenerator):
    """A Keras model `[frames (W, n_mels), valid (W, 1), state (S,)] -> log_alpha (G,)`
    computing what `StreamingCall(mask)` computes, in float."""
    import keras
    from keras import layers

    cfg = mask.cfg
    if cfg.arch not in ("tiny", "small"):
        raise ConfigError(f"no Keras builder for mask architecture {cfg.arch!r}")
    w, n_mels, fps = cfg.window_frames, cfg.frontend.n_mels, cfg.fps
    g = cfg.gate.band_groups
    state_width = StreamingCall(mask).state_width()
    sd = {k: v.detach().cpu().numpy().astype(np.float32) for k, v in mask.state_dict().items()}
    frames = keras.Input((w, n_mels), batch_size=1, name="frames")
    valid = keras.Input((w, 1), batch_size=1, name="valid")
    state = keras.Input((state_width,), batch_size=1, name="state")
    weights: list[tuple[layers.Layer, list[np.ndarray]]] = []

    def use(layer, *arrays):
        weights.append((layer, list(arrays)))
        return layer

    # time runs along the height of 2-D tensors (W, 1, C): TFLite's convolution kernels are 2-D,
    # and Keras' 1-D depthwise layer converts to a 3-D DEPTHWISE_CONV_2D that TFLite rejects
    x = layers.Reshape((w, 1, n_mels), name="as_image")(frames)
    v = layers.Reshape((w, 1, 1), name="valid_image")(valid)
    # per-band standardisation as a 1x1 depthwise convolution (scale and offset per band)
    inv = 1.0 / sd["norm.std"]
    x = use(layers.DepthwiseConv2D(1, name="normalize"), inv.reshape(1, 1, n_mels, 1),
            -sd["norm.mean"] * inv)(x)
    x = layers.Multiply(name="valid_input")([x, v])
    if cfg.arch == "tiny":
        h = layers.Flatten(name="flatten")(x)
        h = use(layers.Dense(cfg.hidden, activation="relu", name="fc1"), sd["net.fc1.weight"].T,
                sd["net.fc1.bias"])(h)
        a = use(layers.Dense(g, name="fc2"), sd["net.fc2.weight"].T, sd["net.fc2.bias"])(h)
    else:
        h = use(layers.Conv2D(cfg.hidden, 1, activation="relu", name="inp"),
                _conv(sd["net.inp.weight"]), sd["net.inp.bias"])(x)
        h = layers.Multiply(name="valid_inp")([h, v])
        for i in range(cfg.layers):
            d = 2 ** i
            y = layers.ZeroPadding2D((((cfg.kernel - 1) * d, 0), (0, 0)), name=f"causal_pad{i}")(h)
            y = use(layers.DepthwiseConv2D((cfg.kernel, 1), dilation_rate=(d, 1),
                                           name=f"depthwise{i}"),
                    _depthwise(sd[f"net.depthwise.{i}.weight"]),
                    sd[f"net.depthwise.{i}.bias"])(y)
            y = use(layers.Conv2D(cfg.hidden, 1, activation="relu", name=f"pointwise{i}"),
                    _conv(sd[f"net.pointwise.{i}.weight"]), sd[f"net.pointwise.{i}.bias"])(y)
            h = layers.Add(name=f"residual{i}")([h, y])
            h = layers.Multiply(name=f"valid{i}")([h, v])
        h = layers.Cropping2D(((w - fps, 0), (0, 0)), name="last_segment")(h)
        h = layers.AveragePooling2D((fps, 1), name="segment_mean")(h)
        h = layers.Flatten(name="segment")(h)
        a = use(layers.Dense(g, name="head"), _conv(sd["net.head.weight"])[0, 0],
                sd["net.head.bias"])(h)
    bound = cfg.logit_bound
    if cfg.feedback:
        fb = bound * np.tanh(sd["feedback.weight"])
    else:  # no feedback: the state input is kept (one unused zero) with zero weights
        fb = np.zeros((g, state_width), np.float32)
    feedback = use(layers.Dense(g, use_bias=False, name="feedback"), fb.T)(state)
    a = layers.Add(name="logits")([a, feedback])
    la = layers.Rescaling(1.0 / bound, name="to_tanh")(a)
    la = layers.Activation("tanh", name="tanh")(la)
    la = layers.Rescaling(bound, name="log_alpha")(la)
    model = keras.Model([frames, valid, state], la, name=f"speechmask_{cfg.arch}")
    for layer, arrays in weights:
        layer.set_weights(arrays)
    return model


def _conv(weight: np.ndarray) -> np.ndarray:
    """PyTorch Conv1d weight `(out, in, k)` -> Keras Conv2D kernel `(k, 1, in, out)`."""
    return np.transpose(weight, (2, 1, 0))[:, None]


def _depthwise(weight: np.ndarray) -> np.ndarray:
    """PyTorch depthwise Conv1d weight `(C, 1, k)` -> Keras DepthwiseConv2D kernel
    `(k, 1, C, 1)`."""
    return np.transpose(weight, (2, 0, 1))[:, None]
