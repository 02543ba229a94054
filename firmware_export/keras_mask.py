"""The Keras twin of `speechmask.device.StreamingCall`, built layer by layer from the PyTorch
weights.

How PyTorch reaches TensorFlow: every architecture the trainer offers (`tiny`, `small`) is
rebuilt here from standard Keras layers whose TFLite kernels TFLite Micro has (CONV_2D,
DEPTHWISE_CONV_2D, FULLY_CONNECTED, CONCATENATION, ADD, AVERAGE_POOL_2D, TANH, ...), and the
weights are copied over. A generic graph translator (onnx2tf) pins an older TensorFlow than this
project's, and litert-torch's dependencies break Flower's; a rebuild per architecture is small,
and the float twin is checked against PyTorch before anything is quantized.

Time runs along the height of 2-D tensors `(1, T, 1, C)`: TFLite's convolution kernels are 2-D,
and Keras' 1-D depthwise layer converts to a 3-D DEPTHWISE_CONV_2D that TFLite rejects. The
inputs and outputs are 4-D too (`(1, T, 1, C)`; the same bytes as the ONNX model's `(1, T, C)`),
so the graph holds no RESHAPE around them. The batch is fixed at 1: a dynamic batch brings in
SHAPE/PACK/SPACE_TO_BATCH_ND, after which the two TFLite runtimes no longer agree within 1 LSB
(the export checks the agreement; history in CHANGELOG.md).
"""

from __future__ import annotations

import numpy as np

from speechmask.errors import ConfigError
from speechmask.models.mask import MaskGenerator

from speechmask.device import histories, input_names, input_shapes, output_names


def build_keras(mask: MaskGenerator):
    """A Keras model computing what `StreamingCall(mask)` computes, in float, with inputs and
    outputs named as in `speechmask.device.input_names` / `output_names`."""
    import keras
    from keras import layers

    cfg = mask.cfg
    if cfg.arch not in ("tiny", "small"):
        raise ConfigError(f"no Keras builder for mask architecture {cfg.arch!r}")
    seg_frames, n_mels, g = cfg.frames_per_segment, cfg.frontend.n_mels, cfg.gate.band_groups
    sd = {k: v.detach().cpu().numpy().astype(np.float32) for k, v in mask.state_dict().items()}
    names, shapes = input_names(cfg), input_shapes(cfg)
    inputs = [keras.Input(s if len(s) == 1 else (s[0], 1, s[1]), batch_size=1, name=n)
              for n, s in zip(names, shapes)]
    frames, past, state = inputs[0], inputs[1:-1], inputs[-1]
    layer_of = {h.layer: k for k, h in enumerate(histories(cfg))}
    weights: list[tuple[layers.Layer, list[np.ndarray]]] = []

    def use(layer, *arrays):
        weights.append((layer, list(arrays)))
        return layer

    # per-band standardisation as a 1x1 depthwise convolution (scale and offset per band)
    inv = 1.0 / sd["norm.std"]
    x = use(layers.DepthwiseConv2D(1, name="normalize"), inv.reshape(1, 1, n_mels, 1),
            -sd["norm.mean"] * inv)(frames)
    new = []
    if cfg.arch == "tiny":
        if past:
            new.append(x)
            x = layers.Concatenate(axis=1, name="window")([past[0], x])
        h = layers.Flatten(name="flatten")(x)
        h = use(layers.Dense(cfg.hidden, activation="relu", name="fc1"), sd["net.fc1.weight"].T,
                sd["net.fc1.bias"])(h)
        a = use(layers.Dense(g, name="fc2"), sd["net.fc2.weight"].T, sd["net.fc2.bias"])(h)
    else:
        h = use(layers.Conv2D(cfg.hidden, 1, activation="relu", name="inp"),
                _conv(sd["net.inp.weight"]), sd["net.inp.bias"])(x)
        for i in range(cfg.layers):
            full = h
            if i in layer_of:
                new.append(h)
                full = layers.Concatenate(axis=1, name=f"lookback{i}")([past[layer_of[i]], h])
            y = use(layers.DepthwiseConv2D((cfg.kernel, 1), dilation_rate=(2 ** i, 1),
                                           name=f"depthwise{i}"),
                    _depthwise(sd[f"net.depthwise.{i}.weight"]),
                    sd[f"net.depthwise.{i}.bias"])(full)
            y = use(layers.Conv2D(cfg.hidden, 1, activation="relu", name=f"pointwise{i}"),
                    _conv(sd[f"net.pointwise.{i}.weight"]), sd[f"net.pointwise.{i}.bias"])(y)
            h = layers.Add(name=f"residual{i}")([h, y])
        h = layers.AveragePooling2D((seg_frames, 1), name="segment_mean")(h)
        h = layers.Flatten(name="segment")(h)
        a = use(layers.Dense(g, name="head"), _conv(sd["net.head.weight"])[0, 0],
                sd["net.head.bias"])(h)
    bound = cfg.logit_bound
    if cfg.feedback:
        fb = bound * np.tanh(sd["feedback.weight"])
    else:  # no feedback: the state input is kept (one unused zero) with zero weights
        fb = np.zeros((g, state.shape[-1]), np.float32)
    feedback = use(layers.Dense(g, use_bias=False, name="feedback"), fb.T)(state)
    a = layers.Add(name="logits")([a, feedback])
    la = layers.Rescaling(1.0 / bound, name="to_tanh")(a)
    la = layers.Activation("tanh", name="tanh_logit")(la)  # log_alpha / bound
    model = keras.Model(inputs, [la, *new], name=f"speechmask_{cfg.arch}")
    for layer, arrays in weights:
        layer.set_weights(arrays)
    assert len(model.outputs) == len(output_names(cfg))
    return model


def _conv(weight: np.ndarray) -> np.ndarray:
    """PyTorch Conv1d weight `(out, in, k)` -> Keras Conv2D kernel `(k, 1, in, out)`."""
    return np.transpose(weight, (2, 1, 0))[:, None]


def _depthwise(weight: np.ndarray) -> np.ndarray:
    """PyTorch depthwise Conv1d weight `(C, 1, k)` -> Keras DepthwiseConv2D kernel
    `(k, 1, C, 1)`."""
    return np.transpose(weight, (2, 0, 1))[:, None]
