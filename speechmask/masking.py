"""Inference: gates for an utterance, masked features and audio. Streaming, call by call as the
device runs it: `speechmask.device` (identical gates). The gates are decided on the raw features;
what is sent of the open positions has first been through the device-side steps of the mask's
`SendConfig` (`speechmask.device.send`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .audio import from_pcm16, to_pcm16
from .device.send import send_float
from .features import log_mel_numpy
from .models.gates import binary_gates, expand_gates, floor_value, mask_features, mask_waveform
from .models.mask import MaskGenerator


@dataclass
class MaskedUtterance:
    features: np.ndarray  # (T, n_mels) clean log-mel
    masked_features: np.ndarray  # (T, n_mels) sent: open positions after the send steps,
                                 # withheld ones at the floor value
    log_alpha: np.ndarray  # (S, G)
    gates: np.ndarray  # (S, G) binary, what the device sends
    masked_audio: np.ndarray | None  # (n,) when band_groups == 1 and no send step is on

    @property
    def open_fraction(self) -> float:
        return float(self.gates.mean()) if self.gates.size else 0.0


def sent_with_gates(features: np.ndarray, gates: np.ndarray, gate, frontend,
                    mask_cfg=None) -> tuple[np.ndarray, np.ndarray]:
    """(what is sent of one utterance `(T, n_mels)`, `(T, n_mels)` bool: sent) for its binary
    gates `(S, G)` (a GateConfig's segments and bands, from any mask, float or int8): the open
    positions, first through the send steps of `mask_cfg` (a MaskConfig) when given, and the
    withheld ones at the floor value, which is `mask_features`' result for binary gates
    without its exp/log over every value."""
    keep = expand_gates(torch.from_numpy(np.asarray(gates, np.float32))[None], features.shape[0],
                        gate.frames_per_segment(frontend),
                        gate.band_edges(frontend.n_mels))[0].numpy() > 0
    if mask_cfg is not None:
        features = send_float(features, mask_cfg)
    return np.where(keep, features, np.float32(floor_value(frontend))).astype(np.float32), keep


@torch.no_grad()
def gate_logits(mask: MaskGenerator, features: np.ndarray) -> np.ndarray:
    """Offline: `(T, n_mels)` -> log_alpha `(T // seg_frames, G)`."""
    return mask.eval()(torch.as_tensor(features, dtype=torch.float32)[None])[0].numpy()


@torch.no_grad()
def mask_batch(mask: MaskGenerator, x: torch.Tensor, lengths: torch.Tensor):
    """What the device sends for a padded batch `(B, T, n_mels)`: (masked features, binary gates
    `(B, S, G)`, `(B, S)` bool marking the segments inside each utterance). `mask` in eval mode."""
    cfg = mask.cfg
    gates = binary_gates(mask(x), cfg.gate)
    segments = lengths // cfg.frames_per_segment
    valid = torch.arange(gates.shape[1], device=x.device)[None] < segments[:, None]
    m = expand_gates(gates, x.shape[1], cfg.frames_per_segment, cfg.gate.band_edges(x.shape[2]))
    return mask_features(send_float(x, cfg, lengths), m, floor_value(cfg.frontend)), gates, valid


def mask_utterance(mask: MaskGenerator, wave: np.ndarray) -> MaskedUtterance:
    """Everything the device does to one utterance. wave: float `(n,)` at 16 kHz."""
    cfg = mask.cfg
    wave = from_pcm16(to_pcm16(wave))  # what the ADC delivers
    feats = log_mel_numpy(wave.astype(np.float64), cfg.frontend).astype(np.float32)
    log_alpha = gate_logits(mask, feats)
    gates = binary_gates(torch.from_numpy(log_alpha), cfg.gate).numpy()
    m = expand_gates(torch.from_numpy(gates)[None], feats.shape[0], cfg.frames_per_segment,
                     cfg.gate.band_edges(cfg.frontend.n_mels))
    sent = send_float(torch.from_numpy(feats)[None], cfg)
    masked = mask_features(sent, m, floor_value(cfg.frontend))[0].numpy()
    audio = (mask_waveform(wave, gates[:, 0], cfg.gate.samples_per_segment(cfg.frontend))
             if cfg.sends_audio else None)
    return MaskedUtterance(feats, masked, log_alpha, gates, audio)
