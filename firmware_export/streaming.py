"""One device call of the mask generator, as the exported models compute it.

The firmware calls the model once per completed segment with a fixed window of `window_frames`
raw log-mel frames (the segment's own frames and the look-back), a per-frame validity flag (0 for
frames before the utterance started: the float model pads its hidden activations with zeros
there, and the flag reproduces that exactly), and the gates it has already sent (newest first,
gate feedback). It returns the segment's gate logits log_alpha `(G,)`; the device opens a gate
where log_alpha > `GateConfig.threshold_logit`.

`StreamingCall` is the PyTorch reference of that call (it is what `mask.onnx` exports);
`windows` cuts real utterances into the calls the device would make, with the float model's
own gate decisions fed back. Feeding these calls one by one reproduces
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
        return max(1, self.cfg.feedback * self.cfg.gate.band_groups)


@torch.no_grad()
def windows(mask: MaskGenerator, features: np.ndarray) -> tuple[np.ndarray, ...]:
    """The device's calls for one utterance `(T, n_mels)`: frames `(S, W, n_mels)`, valid
    `(S, W, 1)`, state `(S, state_width)`, and the float model's log_alpha `(S, G)` and gates,
    the gates fed back being the float model's own binary decisions."""
    cfg = mask.cfg
    fps, w, g = cfg.fps, cfg.window_frames, cfg.gate.band_groups
    call = StreamingCall(mask)
    s_count = features.shape[0] // fps
    frames = np.full((s_count, w, features.shape[1]), 0.0, np.float32)
    valid = np.zeros((s_count, w, 1), np.float32)
    states = np.zeros((s_count, call.state_width()), np.float32)
    logits = np.zeros((s_count, g), np.float32)
    history = np.zeros((max(1, cfg.feedback), g), np.float32)  # newest first
    for s in range(s_count):
        end = (s + 1) * fps
        start = max(0, end - w)
        frames[s, w - (end - start):] = features[start:end]
        valid[s, w - (end - start):] = 1.0
        if cfg.feedback:
            states[s] = history[: cfg.feedback].reshape(-1)
        la = call(torch.from_numpy(frames[s:s + 1]), torch.from_numpy(valid[s:s + 1]),
                  torch.from_numpy(states[s:s + 1]))[0]
        logits[s] = la.numpy()
        history = np.concatenate([binary_gates(la, cfg.gate).numpy()[None], history[:-1]])
    # frames before the start hold the floor-free value 0: the validity flag zeroes them anyway
    gates = (logits > cfg.gate.threshold_logit).astype(np.float32)
    return frames, valid, states, logits, gates
