"""The PyTorch reference of the device's call (`StreamingCall`), and the loop the device runs
around it: each call's new history frames shifted in, its gates fed back (`DeviceLoop`).

Why stateful and not a fixed window of raw frames: a window recomputes every layer over the whole
look-back on each call; with histories each frame goes through each layer once, so a call costs
what the offline count says per segment. In the int8 model each `new<i>` has the quantization of
`history<i>` (TFLite's CONCATENATION shares one scale between its inputs and its output), so the
firmware copies bytes and never requantizes (the export checks it).

Feeding the calls one by one reproduces `speechmask.masking.gate_logits` offline exactly
(tested for every architecture).
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..models.gates import binary_gates
from ..models.mask import MaskConfig, MaskGenerator
from .contract import histories

#: `decide(inputs)`: one call's inputs (in `input_names` order, no batch axis) -> (output `(G,)`,
#: binary gates `(G,)`, the new history frames, each in the representation of its history)
Decide = Callable[[list[np.ndarray]], tuple[np.ndarray, np.ndarray, list[np.ndarray]]]


class StreamingCall(nn.Module):
    """`(frames (B, frames_per_segment, n_mels), *histories (B, frames_i, channels_i),
    state (B, state_width))` -> `(tanh_logit (B, G), *new (B, frames_per_segment, channels_i))`,
    tanh_logit = log_alpha / logit_bound. What `mask.onnx` exports and the Keras twin rebuilds."""

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
            h = torch.relu(net.inp(x.transpose(1, 2)))  # (B, hidden, frames_per_segment)
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


class DeviceLoop:
    """What the device keeps between calls: one history per looking-back layer (`initial`: their
    value at the utterance start, "zero" in their representation) and the gates it has sent.
    `call(frames)` makes one call through `decide` and updates both."""

    def __init__(self, cfg: MaskConfig, decide: Decide, initial: list[np.ndarray]):
        self.cfg, self.decide = cfg, decide
        self.past = [np.array(a) for a in initial]
        self.sent = np.zeros((max(1, cfg.feedback), cfg.gate.band_groups), np.float32)

    def call(self, frames: np.ndarray) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
        """One segment's frames `(frames_per_segment, n_mels)` -> (the call's inputs, its
        output `(G,)`, its binary gates `(G,)`)."""
        cfg = self.cfg
        state = (self.sent[: cfg.feedback].reshape(-1) if cfg.feedback
                 else np.zeros(1, np.float32))
        inputs = [np.asarray(frames, np.float32), *self.past, state]
        out, z, news = self.decide(inputs)
        self.past = [np.concatenate([p, n])[len(n):] for p, n in zip(self.past, news)]
        z = np.asarray(z, np.float32).reshape(1, cfg.gate.band_groups)
        self.sent = np.concatenate([z, self.sent[:-1]])
        return inputs, out, z[0]


def closed_loop(cfg: MaskConfig, features: np.ndarray, decide: Decide,
                initial: list[np.ndarray]) -> tuple[list[list[np.ndarray]], np.ndarray, np.ndarray]:
    """The device's calls for one utterance `(T, n_mels)` (see `DeviceLoop`). Returns every
    call's inputs, the outputs `(S, G)` and the gates `(S, G)`."""
    n, g = cfg.frames_per_segment, cfg.gate.band_groups
    loop = DeviceLoop(cfg, decide, initial)
    calls, outputs, gates = [], [], []
    for s in range(features.shape[0] // n):
        inputs, out, z = loop.call(features[s * n:(s + 1) * n])
        calls.append(inputs)
        outputs.append(out)
        gates.append(z)
    return (calls, np.array(outputs, np.float32).reshape(-1, g),
            np.array(gates, np.float32).reshape(-1, g))


def float_decide(mask: MaskGenerator) -> Decide:
    """The float model deciding: log_alpha, its binary gates and the new history frames."""
    call = StreamingCall(mask)

    @torch.no_grad()
    def decide(inputs):
        y, *news = call(*(torch.from_numpy(a)[None] for a in inputs))
        la = mask.cfg.logit_bound * y[0]
        return la.numpy(), binary_gates(la, mask.cfg.gate).numpy(), [n[0].numpy() for n in news]

    return decide


def zero_histories(cfg: MaskConfig) -> list[np.ndarray]:
    return [np.zeros((h.frames, h.channels), np.float32) for h in histories(cfg)]


def float_calls(mask: MaskGenerator, features: np.ndarray
                ) -> tuple[list[list[np.ndarray]], np.ndarray, np.ndarray]:
    """The device's calls for one utterance with the float model deciding (see `closed_loop`):
    each call's inputs, the float log_alpha `(S, G)` and the gates."""
    return closed_loop(mask.cfg, features, float_decide(mask), zero_histories(mask.cfg))


class StreamingGates:
    """Frames pushed as they arrive -> the log_alpha of every segment they complete, computed by
    the device's calls (float). Keeps at most one incomplete segment of frames besides the
    histories; equals `speechmask.masking.gate_logits` offline for any chunking."""

    def __init__(self, mask: MaskGenerator):
        self.cfg = mask.cfg
        self.loop = DeviceLoop(mask.cfg, float_decide(mask), zero_histories(mask.cfg))
        self.pending = np.zeros((0, mask.cfg.frontend.n_mels), np.float32)

    def push(self, frames: np.ndarray) -> np.ndarray:
        """Frames `(k, n_mels)` -> log_alpha of every newly completed segment `(j, G)`."""
        n = self.cfg.frames_per_segment
        self.pending = np.concatenate([self.pending, np.asarray(frames, np.float32)])
        out = []
        while len(self.pending) >= n:
            out.append(self.loop.call(self.pending[:n])[1])
            self.pending = self.pending[n:]
        return np.stack(out) if out else np.zeros((0, self.cfg.gate.band_groups), np.float32)
