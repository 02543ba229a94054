"""Optional adversaries that aim the mask at short-term cues: a speaker classifier and a CTC ASR,
each trained on masked features while the mask generator receives its reversed gradient."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..models.mask import Normalizer

ALPHABET = " abcdefghijklmnopqrstuvwxyz'"  # CTC blank is index 0, characters 1..28


class GradReverse(torch.autograd.Function):
    """Identity forward; backward multiplies the gradient by -weight (Ganin & Lempitsky 2015)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: float) -> torch.Tensor:
        ctx.weight = weight
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return -ctx.weight * grad, None


def grad_reverse(x: torch.Tensor, weight: float) -> torch.Tensor:
    return GradReverse.apply(x, weight)


class SpeakerAdversary(nn.Module):
    """Masked log-mel `(B, T, F)` -> speaker logits, mean-pooled over valid frames."""

    def __init__(self, n_mels: int, n_speakers: int, width: int = 96):
        super().__init__()
        self.norm = Normalizer(n_mels)
        self.conv = nn.Sequential(nn.Conv1d(n_mels, width, 5, padding=2), nn.ReLU(),
                                  nn.Conv1d(width, width, 5, padding=2), nn.ReLU())
        self.out = nn.Linear(2 * width, n_speakers)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        h = self.conv(self.norm(x).transpose(1, 2))  # (B, W, T)
        valid = (torch.arange(h.shape[-1], device=h.device)[None] < lengths[:, None]).float()
        n = valid.sum(1, keepdim=True).clamp_min(1)
        mean = (h * valid[:, None]).sum(-1) / n
        std = ((h - mean[..., None]) ** 2 * valid[:, None]).sum(-1).div(n).clamp_min(1e-6).sqrt()
        return self.out(torch.cat([mean, std], dim=1))  # x-vector style statistics pooling


class CTCAdversary(nn.Module):
    """Masked log-mel -> per-step character log-probabilities (stride 2 in time)."""

    def __init__(self, n_mels: int, hidden: int = 128):
        super().__init__()
        self.norm = Normalizer(n_mels)
        self.conv = nn.Conv1d(n_mels, hidden, 5, stride=2, padding=2)
        self.gru = nn.GRU(hidden, hidden, batch_first=True, bidirectional=True)
        self.out = nn.Linear(2 * hidden, len(ALPHABET) + 1)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor):
        h = torch.relu(self.conv(self.norm(x).transpose(1, 2))).transpose(1, 2)
        out, _ = self.gru(h)
        return F.log_softmax(self.out(out), dim=-1), ((lengths - 1) // 2 + 1).clamp_min(1)


def encode_text(text: str | None) -> list[int]:
    """Transcript -> CTC target ids (unknown characters dropped)."""
    return [ALPHABET.index(c) + 1 for c in (text or "") if c in ALPHABET]


def ctc_loss(log_probs: torch.Tensor, out_lengths: torch.Tensor, texts: list[str | None]
             ) -> torch.Tensor:
    """Per-utterance CTC loss `(B,)` (0 where there is no transcript)."""
    targets = [encode_text(t) for t in texts]
    flat = torch.tensor([c for t in targets for c in t], dtype=torch.long)
    tl = torch.tensor([len(t) for t in targets], dtype=torch.long)
    loss = F.ctc_loss(log_probs.transpose(0, 1).float(), flat, out_lengths.cpu(), tl,
                      blank=0, reduction="none", zero_infinity=True)
    return loss * (tl > 0).float().to(loss.device) / tl.clamp_min(1).to(loss.device)
