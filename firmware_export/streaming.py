"""One device call of the mask generator, as the exported models compute it.

The firmware calls the model once per completed segment with a fixed window of `window_frames`
raw log-mel frames (the segment's own frames and the look-back), a per-frame validity flag (0 for
frames before the utterance started: the float model pads its hidden activations with zeros
there, and the flag reproduces that exactly), and the gates it has already sent (newest first,
gate feedback). It returns the segment's gate logits log_alpha `(G,)`; the device opens a gate
where log_alpha > `GateConfig.threshold_logit`.

`StreamingCall` is the PyTorch reference of that call (it is what `mask.onnx` exports);
`closed_loop` cuts an utterance into the calls the device would make, feeding back whatever
decides the gates (`windows`: the float model; `tflite_int8.int8_gates`: the int8 model). Feeding these calls one by one reproduces
`speechmask.masking.gate_logits` offline exactly (tested).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from speechmask.models.gates import binary_gates
from speechmask.models.mask import MaskGenerator


class StreamingCall(nn.Module):
    """`(frames (B, W, n_mels), valid (B, W, 1), state (B, feedback * G))` -> log_alpha `(B, G)`.
    With `feedback == 0` the state input is a single unused zero (kept so every exported model
    has the same three inputs)."""

    def __init__(self, mask: MaskGenerator):
        super().__init__()
        self.mask = mask.eval()
        self.cfg = mask.cfg

    def forward(self, frames: torch.Tensor, valid: torch.Tensor, state: torch.Tensor
                ) -> torch.Tensor:
        cfg, net = self.cfg, self.mask.net
        x = self.mask.norm(frames) * valid
        if cfg.arch == "tiny":
            a = net.fc2(torch.relu(net.fc1(x.flatten(1))))
        else:
            fps = cfg.fps
            h = torch.relu(net.inp(x.transpose(1, 2))) * valid.transpose(1, 2)
            for dw, pw in zip(net.depthwise, net.pointwise):
                pad = (cfg.kernel - 1) * dw.dilation[0]
                h = (h + torch.relu(pw(dw(F.pad(h, (pad, 0)))))) * valid.transpose(1, 2)
            a = net.head(h[..., -fps:].mean(-1, keepdim=True))[..., 0]
        bound = cfg.logit_bound
        if self.mask.feedback is not None:
            a = a + F.linear(state, bound * torch.tanh(self.mask.feedback.weight))
        return bound * torch.tanh(a / bound)

    def state_width(self) -> int:
        return state_width(self.cfg)


def closed_loop(cfg, features: np.ndarray, decide) -> tuple[np.ndarray, ...]:
    """The device's calls for one utterance `(T, n_mels)`, each call's gates fed back into the
    next: `decide(frames (W, n_mels), valid (W, 1), state (state_width,))` returns (output
    `(G,)`, binary gates `(G,)`). Returns frames `(S, W, n_mels)`, valid `(S, W, 1)`, state
    `(S, state_width)`, outputs `(S, G)` and gates `(S, G)`."""
    fps, w, g = cfg.fps, cfg.window_frames, cfg.gate.band_groups
    s_count = features.shape[0] // fps
    frames = np.zeros((s_count, w, features.shape[1]), np.float32)
    valid = np.zeros((s_count, w, 1), np.float32)
    states = np.zeros((s_count, state_width(cfg)), np.float32)
    outputs, gates = [], []
    history = np.zeros((max(1, cfg.feedback), g), np.float32)  # newest first
    for s in range(s_count):
        end = (s + 1) * fps
        start = max(0, end - w)
        # frames before the utterance start stay 0; their validity flag is 0 too
        frames[s, w - (end - start):] = features[start:end]
        valid[s, w - (end - start):] = 1.0
        if cfg.feedback:
            states[s] = history[: cfg.feedback].reshape(-1)
        out, z = decide(frames[s], valid[s], states[s])
        outputs.append(out)
        gates.append(z)
        history = np.concatenate([np.asarray(z, np.float32)[None], history[:-1]])
    return (frames, valid, states, np.array(outputs).reshape(-1, g),
            np.array(gates, np.float32).reshape(-1, g))


def state_width(cfg) -> int:
    """Width of the state input: the fed-back gates, or one unused zero without feedback."""
    return max(1, cfg.feedback * cfg.gate.band_groups)


@torch.no_grad()
def windows(mask: MaskGenerator, features: np.ndarray) -> tuple[np.ndarray, ...]:
    """The device's calls for one utterance `(T, n_mels)` with the float model deciding (see
    `closed_loop`): frames, valid, state, the float log_alpha `(S, G)` and its gates."""
    call = StreamingCall(mask)

    def decide(frames, valid, state):
        la = call(*(torch.from_numpy(a)[None] for a in (frames, valid, state)))[0]
        return la.numpy(), binary_gates(la, mask.cfg.gate).numpy()

    return closed_loop(mask.cfg, features, decide)
