"""One device call of the mask generator, as the exported models compute it: stateful streaming.

The firmware calls the model once per completed segment with
- `frames` `(fps, n_mels)`: the segment's new raw log-mel frames (and nothing else);
- one `history<i>` `(frames_i, channels_i)` per layer that looks back: that layer's input on the
  frames before the segment, as earlier calls returned it (zeros before the utterance start: the
  offline model pads every layer with zeros there, so a reset is exact);
- `state`: the gates it has already sent, newest first (gate feedback; one unused zero without).
It returns `tanh_logit` `(G,)`, the gate logit over its bound, `log_alpha / logit_bound` in
[-1, 1] (a gate opens where log_alpha > `GateConfig.threshold_logit`; the int8 model ends at its
TANH, whose int8 output has a fixed scale: a final rescaling by the bound turned TFLite Micro's
rare 1-LSB TANH differences into 2 output steps), and one `new<i>` `(fps, channels_i)` per history: the layer's input on this segment's frames, which the
firmware shifts into `history<i>` for the next call.

Why stateful and not a fixed window of raw frames (the first design): a window recomputes every
layer over the whole look-back on each call, 8x the offline work for the default mask (32 frames
of window for 4 new ones); with histories each frame goes through each layer once, so a call
costs what the offline count says per segment. The histories are small (the default mask:
(4 + 8 + 16) frames x 32 channels = 896 int8 values), and in the int8 model each `new<i>` has the
quantization of `history<i>` (TFLite's CONCATENATION shares one scale between its inputs and its
output), so the firmware copies bytes, never requantizes (checked at export).

`StreamingCall` is the PyTorch reference of that call (what `mask.onnx` exports); `closed_loop`
runs an utterance through the calls the device makes, feeding back the histories and the gates of
whatever decides them (`float_calls`: the float model; `tflite_int8.int8_gates`: the int8 one).
Feeding the calls one by one reproduces `speechmask.masking.gate_logits` offline exactly (tested).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from speechmask.models.gates import binary_gates
from speechmask.models.mask import MaskConfig, MaskGenerator


@dataclass(frozen=True)
class History:
    """One layer's look-back: its input on the `frames` frames before the current segment."""

    name: str
    layer: int  # tiny: 0 (the normalised input); small: the dilated block it feeds
    frames: int
    channels: int


def histories(cfg: MaskConfig) -> list[History]:
    if cfg.arch == "tiny":
        n = cfg.context_segments * cfg.fps
        return [History("history0", 0, n, cfg.frontend.n_mels)] if n else []
    out = []
    for i in range(cfg.layers):
        n = (cfg.kernel - 1) * 2 ** i
        if n:
            out.append(History(f"history{len(out)}", i, n, cfg.hidden))
    return out


def input_names(cfg: MaskConfig) -> list[str]:
    return ["frames", *(h.name for h in histories(cfg)), "state"]


def output_names(cfg: MaskConfig) -> list[str]:
    return ["tanh_logit", *(h.name.replace("history", "new") for h in histories(cfg))]


def state_width(cfg: MaskConfig) -> int:
    """Width of the state input: the fed-back gates, or one unused zero without feedback."""
    return max(1, cfg.feedback * cfg.gate.band_groups)


def input_shapes(cfg: MaskConfig) -> list[tuple[int, ...]]:
    """Shapes of the inputs (in `input_names` order), without the batch axis."""
    return [(cfg.fps, cfg.frontend.n_mels), *((h.frames, h.channels) for h in histories(cfg)),
            (state_width(cfg),)]


class StreamingCall(nn.Module):
    """`(frames (B, fps, n_mels), *histories (B, frames_i, channels_i), state (B, S))` ->
    `(tanh_logit (B, G), *new (B, fps, channels_i))`, tanh_logit = log_alpha / logit_bound."""

    def __init__(self, mask: MaskGenerator):
        super().__init__()
        self.mask = mask.eval()
        self.cfg = mask.cfg
        self.layers = {h.layer: k for k, h in enumerate(histories(mask.cfg))}

    def forward(self, frames: torch.Tensor, *rest: torch.Tensor) -> tuple[torch.Tensor, ...]:
        *past, state = rest
        cfg, net = self.cfg, self.mask.net
        x = self.mask.norm(frames)
        new = []
        if cfg.arch == "tiny":
            if past:
                new.append(x)
                x = torch.cat([past[0], x], 1)
            a = net.fc2(torch.relu(net.fc1(x.flatten(1))))
        else:
            h = torch.relu(net.inp(x.transpose(1, 2)))  # (B, hidden, fps)
            for i, (dw, pw) in enumerate(zip(net.depthwise, net.pointwise)):
                full = h
                if i in self.layers:
                    new.append(h.transpose(1, 2))
                    full = torch.cat([past[self.layers[i]].transpose(1, 2), h], -1)
                h = h + torch.relu(pw(dw(full)))  # no padding: the history is the look-back
            a = net.head(h.mean(-1, keepdim=True))[..., 0]
        bound = cfg.logit_bound
        if self.mask.feedback is not None:
            a = a + F.linear(state, bound * torch.tanh(self.mask.feedback.weight))
        return (torch.tanh(a / bound), *new)


def closed_loop(cfg: MaskConfig, features: np.ndarray, decide, initial: list[np.ndarray]
                ) -> tuple[list[list[np.ndarray]], np.ndarray, np.ndarray]:
    """The device's calls for one utterance `(T, n_mels)`: each call's new frames shifted into the
    histories, its gates fed back as state. `decide(inputs)` (inputs in `input_names` order,
    without batch axis) returns (output `(G,)`, binary gates `(G,)`, news, each in the
    representation of its history); `initial` holds the histories at the utterance start (what
    "zero" is in that representation). Returns every call's inputs, the outputs `(S, G)` and the
    gates `(S, G)`."""
    fps, g = cfg.fps, cfg.gate.band_groups
    past = [np.array(a) for a in initial]
    sent = np.zeros((max(1, cfg.feedback), g), np.float32)  # newest first
    calls, outputs, gates = [], [], []
    for s in range(features.shape[0] // fps):
        state = sent[: cfg.feedback].reshape(-1) if cfg.feedback else np.zeros(1, np.float32)
        inputs = [np.asarray(features[s * fps:(s + 1) * fps], np.float32), *past, state]
        out, z, news = decide(inputs)
        calls.append(inputs)
        outputs.append(out)
        gates.append(z)
        past = [np.concatenate([p, n])[len(n):] for p, n in zip(past, news)]
        sent = np.concatenate([np.asarray(z, np.float32).reshape(1, g), sent[:-1]])
    return (calls, np.array(outputs, np.float32).reshape(-1, g),
            np.array(gates, np.float32).reshape(-1, g))


@torch.no_grad()
def float_calls(mask: MaskGenerator, features: np.ndarray
                ) -> tuple[list[list[np.ndarray]], np.ndarray, np.ndarray]:
    """The device's calls for one utterance with the float model deciding (see `closed_loop`):
    each call's inputs, the float log_alpha `(S, G)` and the gates."""
    call = StreamingCall(mask)

    def decide(inputs):
        y, *news = call(*(torch.from_numpy(a)[None] for a in inputs))
        la = mask.cfg.logit_bound * y[0]
        return la.numpy(), binary_gates(la, mask.cfg.gate).numpy(), [n[0].numpy() for n in news]

    initial = [np.zeros((h.frames, h.channels), np.float32) for h in histories(mask.cfg)]
    return closed_loop(mask.cfg, features, decide, initial)
