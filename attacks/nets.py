"""The trained attackers' networks: a CTC ASR, an x-vector speaker embedder, and an inpainter.

Every network reads what a protection sends, a sequence `(B, T, D)` of any width D (log-mel for
most systems, a learned representation for PPSLU) at `in_stride` feature frames per step, and
standardises it with statistics fitted on the attacker's own training data.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from speechmask.models.baselines import stats_pool
from speechmask.models.mask import Normalizer as Standardize
from speechmask.train.adversaries import ALPHABET

ASR_STRIDE = 4  # CTC steps of 40 ms: the cloud SLU's character head works at this rate



class CTCASR(nn.Module):
    """`(B, T, D)` -> character log-probabilities `(B, T', 29)` at 40 ms per step, and T'.
    Two strided convolutions (BN), a two-layer BiGRU, a linear CTC head (blank = 0)."""

    def __init__(self, dim: int, in_stride: int = 1, channels: int = 160, hidden: int = 128):
        super().__init__()
        self.norm = Standardize(dim)
        stride = max(1, ASR_STRIDE // in_stride)
        s1 = 2 if stride >= 2 else 1
        self.strides = (s1, stride // s1)
        self.conv = nn.Sequential(
            nn.Conv1d(dim, channels, 5, stride=self.strides[0], padding=2), nn.BatchNorm1d(channels),
            nn.ReLU(),
            nn.Conv1d(channels, channels, 5, stride=self.strides[1], padding=2),
            nn.BatchNorm1d(channels), nn.ReLU())
        self.gru = nn.GRU(channels, hidden, num_layers=2, batch_first=True, bidirectional=True,
                          dropout=0.1)
        self.out = nn.Linear(2 * hidden, len(ALPHABET) + 1)

    def out_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        for s in self.strides:
            lengths = (lengths - 1) // s + 1
        return lengths.clamp_min(1)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor):
        h = self.conv(self.norm(x).transpose(1, 2)).transpose(1, 2)
        n = self.out_lengths(lengths).clamp_max(h.shape[1])
        packed = nn.utils.rnn.pack_padded_sequence(h, n.cpu(), batch_first=True,
                                                   enforce_sorted=False)
        out, _ = self.gru(packed)
        out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=h.shape[1])
        return F.log_softmax(self.out(out), dim=-1), n


class SpeakerEmbedder(nn.Module):
    """x-vector style (Snyder et al. 2018): TDNN layers (dilated 1-D convolutions), statistics
    pooling over valid frames, a 128-d embedding, and a speaker classification head for training.
    `embed` returns the embedding (cosine-scored in verification)."""

    def __init__(self, dim: int, n_speakers: int, channels: int = 256, emb: int = 128):
        super().__init__()
        self.norm = Standardize(dim)
        layers: list[nn.Module] = []
        for c_in, k, d in ((dim, 5, 1), (channels, 3, 2), (channels, 3, 3)):
            layers += [nn.Conv1d(c_in, channels, k, dilation=d, padding=d * (k // 2)), nn.ReLU(),
                       nn.BatchNorm1d(channels)]
        layers += [nn.Conv1d(channels, 2 * channels, 1), nn.ReLU(), nn.BatchNorm1d(2 * channels)]
        self.tdnn = nn.Sequential(*layers)
        self.embedding = nn.Linear(4 * channels, emb)
        self.head = nn.Sequential(nn.ReLU(), nn.BatchNorm1d(emb), nn.Linear(emb, n_speakers))

    def embed(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.embedding(stats_pool(self.tdnn(self.norm(x).transpose(1, 2)), lengths))

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x, lengths))


class Inpainter(nn.Module):
    """Masked log-mel `(B, T, F)` + withheld flags `(B, T, F)` -> estimate of the clean log-mel.
    Non-causal (the attacker sees the whole utterance): a stack of dilated convolutions reads
    about 0.3 s of context on both sides (a 40 ms gap needs far less); sent positions are passed
    through unchanged. Convolutions rather than a recurrent layer: several times faster on CPU."""

    def __init__(self, dim: int, channels: int = 128, dilations: tuple[int, ...] = (1, 2, 4, 8, 1)):
        super().__init__()
        self.norm = Standardize(dim)
        self.inp = nn.Conv1d(2 * dim, channels, 5, padding=2)
        self.blocks = nn.ModuleList(nn.Conv1d(channels, channels, 3, dilation=d, padding=d)
                                    for d in dilations)
        self.out = nn.Conv1d(channels, dim, 1)

    def forward(self, x: torch.Tensor, withheld: torch.Tensor) -> torch.Tensor:
        """Returns the completed features in the input's units."""
        w = withheld.float()
        h = torch.relu(self.inp(torch.cat([self.norm(x) * (1 - w), w], dim=-1).transpose(1, 2)))
        for block in self.blocks:
            h = h + torch.relu(block(h))
        guess = self.out(h).transpose(1, 2) * self.norm.std + self.norm.mean
        return torch.where(w.bool(), guess, x)
