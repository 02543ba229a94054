"""Learned baseline protections: a disentangling VAE encoder (in the style of Aloufi et al. 2020)
and an adversarially trained transformer encoder (in the style of PPSLU, Wang et al. IJCAI 2023).

Both run an encoder on the device and send its output. Neither is a reproduction of the paper's
exact network: each keeps the paper's idea at a size that trains in about a minute on 2 cores.
"""

from __future__ import annotations

import torch
from torch import nn

from .mask import Normalizer


def valid_mask(lengths: torch.Tensor, t: int) -> torch.Tensor:
    """`(B, t)` bool: step inside the utterance."""
    return torch.arange(t, device=lengths.device)[None] < lengths[:, None]


def stats_pool(h: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """`(B, C, T)` -> `(B, 2C)` mean and std over valid steps."""
    valid = valid_mask(lengths.clamp_max(h.shape[-1]), h.shape[-1]).float()[:, None]
    n = valid.sum(-1).clamp_min(1)
    mean = (h * valid).sum(-1) / n
    std = (((h - mean[..., None]) ** 2) * valid).sum(-1).div(n).clamp_min(1e-5).sqrt()
    return torch.cat([mean, std], dim=1)


class DisentanglingVAE(nn.Module):
    """Content/speaker disentanglement (Aloufi et al. 2020, "Privacy-preserving voice analysis via
    disentangled representations"). The device runs `encoder` (causal convolutions and a GRU) to
    a per-frame Gaussian content code; a speaker code comes from utterance statistics; the
    decoder rebuilds log-mel from both. A speaker classifier on the content code, through
    gradient reversal, pushes speaker cues out of it. What is sent is the content code; the
    cloud decodes it with the *average* training speaker code (a neutral voice), so the sent
    log-mel carries content and no speaker code."""

    def __init__(self, n_mels: int, n_speakers: int, channels: int = 256, content: int = 32,
                 speaker: int = 16):
        super().__init__()
        self.norm = Normalizer(n_mels)
        self.encoder = nn.ModuleDict({
            "conv": nn.Sequential(nn.Conv1d(n_mels, channels, 5, padding=4), nn.ReLU(),
                                  nn.Conv1d(channels, channels, 5, padding=4), nn.ReLU()),
            "gru": nn.GRU(channels, channels, batch_first=True),
            "head": nn.Linear(channels, 2 * content)})
        self.speaker_enc = nn.Sequential(nn.Conv1d(n_mels, 128, 5, padding=2), nn.ReLU())
        self.speaker_head = nn.Linear(256, speaker)
        self.decoder = nn.Sequential(nn.Conv1d(content + speaker, channels, 5, padding=2),
                                     nn.ReLU(), nn.Conv1d(channels, channels, 5, padding=2),
                                     nn.ReLU(), nn.Conv1d(channels, n_mels, 1))
        self.adversary = nn.Sequential(nn.Linear(2 * content, 128), nn.ReLU(),
                                       nn.Linear(128, n_speakers))
        self.register_buffer("neutral", torch.zeros(speaker))

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Device side: log-mel `(B, T, F)` -> content mean and log-variance `(B, T, content)`."""
        t = x.shape[1]
        h = self.encoder["conv"](self.norm(x).transpose(1, 2))  # left-padded: causal
        h, _ = self.encoder["gru"](h[..., :t].transpose(1, 2))
        mu, logvar = self.encoder["head"](h).chunk(2, dim=-1)
        return mu, logvar.clamp(-8, 8)

    def encode_stream(self, x: torch.Tensor, state: tuple | None = None
                      ) -> tuple[torch.Tensor, tuple]:
        """`encode`'s content mean one chunk `(B, s, F)` at a time, as a device would stream it:
        `state` holds each causal convolution's last `kernel - 1` input frames and the GRU's
        hidden state (None at utterance start). Chunk by chunk it equals `encode` (tested), so
        `streaming_memory` counts a network that runs."""
        conv = self._convs()
        h = self.norm(x).transpose(1, 2)
        if state is None:
            state = tuple(h.new_zeros(h.shape[0], c.in_channels, c.kernel_size[0] - 1)
                          for c in conv) + (None,)
        new = []
        for c, past in zip(conv, state):
            full = torch.cat([past, h], dim=-1)
            new.append(full[..., full.shape[-1] - past.shape[-1]:])
            h = torch.relu(nn.functional.conv1d(full, c.weight, c.bias, dilation=c.dilation))
        h, hidden = self.encoder["gru"](h.transpose(1, 2), state[-1])
        return self.encoder["head"](h).chunk(2, dim=-1)[0], (*new, hidden)

    def streaming_memory(self, frames: int) -> dict:
        """Bytes `encode_stream` holds on a device called every `frames` frames, counted like
        `models.cost.count_cost` (int8 values; the peak over layers of input + output held at
        once): `state_bytes` (convolution histories, GRU hidden state) and `activation_bytes`."""
        conv = self._convs()
        gru, head = self.encoder["gru"], self.encoder["head"]
        state = sum((c.kernel_size[0] - 1) * c.in_channels for c in conv) + gru.hidden_size
        peaks = [(c.kernel_size[0] - 1 + frames) * c.in_channels + frames * c.out_channels
                 for c in conv]
        peaks.append(frames * gru.input_size + gru.hidden_size + frames * gru.hidden_size)
        peaks.append(frames * (head.in_features + head.out_features))
        return {"state_bytes": state, "activation_bytes": max(peaks)}

    def _convs(self) -> list[nn.Conv1d]:
        """The encoder's causal convolutions, in order."""
        return [m for m in self.encoder["conv"] if isinstance(m, nn.Conv1d)]

    def speaker_code(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.speaker_head(stats_pool(self.speaker_enc(self.norm(x).transpose(1, 2)),
                                             lengths))

    def decode(self, content: torch.Tensor, speaker: torch.Tensor) -> torch.Tensor:
        s = speaker[:, None].expand(-1, content.shape[1], -1)
        y = self.decoder(torch.cat([content, s], -1).transpose(1, 2)).transpose(1, 2)
        return y * self.norm.std + self.norm.mean

    @torch.no_grad()
    def set_neutral(self, x: torch.Tensor, lengths: torch.Tensor) -> None:
        self.neutral.copy_(self.speaker_code(x, lengths).mean(0))

    @torch.no_grad()
    def sent(self, x: torch.Tensor) -> torch.Tensor:
        """What the cloud receives, decoded with the neutral speaker: log-mel `(B, T, F)`."""
        mu, _ = self.encode(x)
        return self.decode(mu, self.neutral[None].expand(x.shape[0], -1))

    def device_part(self) -> nn.Module:
        return DevicePart(self, lambda vae, x: vae.encode(x)[0], [self.encoder])


class DevicePart(nn.Module):
    """The part of a baseline that runs on the device, as a module `(1, T, F) -> output` (for
    cost counting and export): `forward` calls `fn(model, x)`; `parts` are the modules whose
    weights the device holds."""

    def __init__(self, model: nn.Module, fn, parts: list[nn.Module]):
        super().__init__()
        self.model, self.fn, self.parts = model, fn, parts

    def device_parameters(self):
        return (p for part in self.parts for p in part.parameters())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(self.model, x)


class PPSLUEncoder(nn.Module):
    """Adversarially trained transformer encoder (after PPSLU, Wang et al. IJCAI 2023): the device
    sends `represent(x)`, `(B, T/4, d)`; the cloud predicts the intent from it. Training adds a
    speaker classifier and a CTC character recogniser on the representation through gradient
    reversal, so the encoder learns to hide speaker and words while keeping the intent."""

    STRIDE = 4

    def __init__(self, n_mels: int, n_intents: int, n_speakers: int, d: int = 144,
                 layers: int = 2, heads: int = 4):
        super().__init__()
        self.norm = Normalizer(n_mels)
        # a convolutional front with batch norm and fixed sinusoidal positions: with a plain
        # strided front and learned positions the encoder stayed near chance on a few hundred
        # training utterances
        self.subsample = nn.Sequential(
            nn.Conv1d(n_mels, d, 5, stride=2, padding=2), nn.BatchNorm1d(d), nn.ReLU(),
            nn.Conv1d(d, d, 5, stride=2, padding=2), nn.BatchNorm1d(d), nn.ReLU(),
            nn.Conv1d(d, d, 5, padding=2), nn.BatchNorm1d(d), nn.ReLU())
        layer = nn.TransformerEncoderLayer(d, heads, 2 * d, dropout=0.1, batch_first=True,
                                           norm_first=True)  # pre-LN: trains from scratch
        self.transformer = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        position = torch.arange(1024)[:, None] / 10000 ** (torch.arange(0, d, 2) / d)
        self.register_buffer("pos", torch.stack([position.sin(), position.cos()], -1)
                             .reshape(1, 1024, d), persistent=False)
        # cloud side
        self.attn = nn.Linear(d, 1)
        self.intent = nn.Linear(d, n_intents)
        # adversaries (training only)
        self.speaker = nn.Linear(2 * d, n_speakers)
        self.ctc = nn.Linear(d, 29)

    def steps(self, lengths: torch.Tensor) -> torch.Tensor:
        return ((lengths - 1) // 2 // 2 + 1).clamp_min(1)

    def represent(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        h = self.subsample(self.norm(x).transpose(1, 2)).transpose(1, 2)
        h = h + self.pos[:, : h.shape[1]]
        pad = ~valid_mask(self.steps(lengths).clamp_max(h.shape[1]), h.shape[1])
        return self.transformer(h, src_key_padding_mask=pad)

    def classify(self, rep: torch.Tensor, steps: torch.Tensor) -> torch.Tensor:
        """Cloud side: representation -> intent logits."""
        valid = valid_mask(steps.clamp_max(rep.shape[1]), rep.shape[1])
        scores = self.attn(rep).squeeze(-1).masked_fill(~valid, float("-inf"))
        return self.intent((torch.softmax(scores, 1).unsqueeze(-1) * rep).sum(1))

    def device_part(self) -> nn.Module:
        return DevicePart(self, lambda m, x: m.represent(x, torch.tensor([x.shape[1]])),
                          [self.subsample, self.transformer])
