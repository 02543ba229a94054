"""The cloud SLU model: utterance-level intent classifier over (possibly masked) log-mel frames.

Input handling makes it robust to channels and to masking: per-utterance mean normalisation over
the *live* frames (not padding, not masked to the floor value), with a 0/1 channel marking masked
frames, so the model knows what it was not sent. An auxiliary CTC character head (used in
training when transcripts exist) makes the encoder learn words, which generalises far better than
intent labels alone on small corpora (the measurement: CHANGELOG.md, mask generator).
"""

from __future__ import annotations


import torch
from torch import nn

from .config import SLUConfig
from .gates import floor_value

CTC_SYMBOLS = 29  # blank + " abcdefghijklmnopqrstuvwxyz'"
def live_frames(features: torch.Tensor, lengths: torch.Tensor, floor: float) -> torch.Tensor:
    """`(B, T)` bool: inside the utterance and not masked (some band above the floor value)."""
    inside = torch.arange(features.shape[1], device=features.device)[None] < lengths[:, None]
    return inside & (features > floor + 1e-3).any(-1)


class SLUModel(nn.Module):
    """CMN + masked-frame channel -> 3 conv (BN, stride 4 in time) -> BiGRU -> attention pooling.

    forward(features `(B, T, n_mels)`, lengths `(B,)`) -> intent logits `(B, n_intents)`;
    `encode` also returns CTC log-probabilities `(B, T/4, 29)` and their lengths.
    """

    STRIDE = 4

    def __init__(self, cfg: SLUConfig):
        super().__init__()
        self.cfg = cfg
        c = cfg.channels
        layers: list[nn.Module] = []
        for c_in, stride in ((cfg.frontend.n_mels + 1, 2), (c, 2), (c, 1)):
            layers += [nn.Conv1d(c_in, c, 5, stride=stride, padding=2), nn.BatchNorm1d(c),
                       nn.ReLU()]
        self.conv = nn.Sequential(*layers)
        self.gru = nn.GRU(c, cfg.hidden, batch_first=True, bidirectional=True)
        self.attn = nn.Linear(2 * cfg.hidden, 1)
        self.drop = nn.Dropout(cfg.dropout)
        self.out = nn.Linear(2 * cfg.hidden, len(cfg.intents))
        self.ctc = nn.Linear(2 * cfg.hidden, CTC_SYMBOLS)
        self.floor = floor_value(cfg.frontend)

    def prepare(self, features: torch.Tensor, lengths: torch.Tensor,
                keep: torch.Tensor | None = None) -> torch.Tensor:
        """`(B, T, F)` -> `(B, T, F + 1)`: mean-normalised live frames (0 elsewhere) + mask flag.

        `keep` `(B, T, F)` in [0, 1] (mask training): `features` are clean and `keep` says how
        much of each is sent. The input is then interpolated linearly between what the model
        sees when a position is sent (keep 1) and when it is withheld (keep 0: floor value,
        mask flag set), so that gradients measure the effect of withholding, flag included
        (the flag is a step function of the features and passes no gradient). For binary
        `keep` this equals `prepare(mask_features(features, keep))` exactly."""
        if keep is None:
            live = live_frames(features, lengths, self.floor).unsqueeze(-1).float()
        else:
            above = live_frames(features, lengths, self.floor).unsqueeze(-1)
            features = keep * features + (1 - keep) * self.floor
            live = (keep * above).amax(-1, keepdim=True)
        if self.cfg.level_norm == "max":  # unchanged when silence is withheld
            ref = features.masked_fill(live == 0, float("-inf")).amax(1, keepdim=True)
            ref = torch.where(torch.isfinite(ref), ref, torch.zeros_like(ref))
        else:
            ref = (features * live).sum(1, keepdim=True) / live.sum(1, keepdim=True).clamp_min(1)
        normed = (features - ref) / self.cfg.feature_scale * live
        return torch.cat([normed, 1.0 - live], dim=-1)

    def summarise(self, features: torch.Tensor, lengths: torch.Tensor | None = None,
                  keep: torch.Tensor | None = None
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(the attention-pooled utterance vector `(B, 2 * hidden)` that the intent layer reads,
        the BiGRU's outputs `(B, T/4, 2 * hidden)`, their lengths)."""
        b, t, _ = features.shape
        if lengths is None:
            lengths = torch.full((b,), t, dtype=torch.long, device=features.device)
        h = self.conv(self.prepare(features, lengths, keep).transpose(1, 2)).transpose(1, 2)
        steps = ((lengths + self.STRIDE - 1) // self.STRIDE).clamp(1, h.shape[1])
        packed = nn.utils.rnn.pack_padded_sequence(h, steps.cpu(), batch_first=True,
                                                   enforce_sorted=False)
        out, _ = self.gru(packed)
        out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=h.shape[1])
        valid = torch.arange(h.shape[1], device=h.device)[None] < steps[:, None]
        scores = self.attn(out).squeeze(-1).masked_fill(~valid, float("-inf"))
        pooled = (torch.softmax(scores, dim=1).unsqueeze(-1) * out).sum(dim=1)
        return pooled, out, steps

    def encode(self, features: torch.Tensor, lengths: torch.Tensor | None = None,
               keep: torch.Tensor | None = None):
        pooled, out, steps = self.summarise(features, lengths, keep)
        return self.out(self.drop(pooled)), torch.log_softmax(self.ctc(out), -1), steps

    def forward(self, features: torch.Tensor, lengths: torch.Tensor | None = None,
                with_ctc: bool = False, keep: torch.Tensor | None = None):
        """Intent logits; with `with_ctc`, (logits, CTC log-probs, CTC lengths). Training calls
        this form so that DDP's hooks see the forward. `keep`: see `prepare`."""
        out = self.encode(features, lengths, keep)
        return out if with_ctc else out[0]
