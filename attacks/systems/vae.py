"""`vae`: a disentangling VAE's encoder on the device; the cloud decodes its content code with a
neutral speaker code, so what is sent reads as log-mel of an average voice."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from speechmask.models.baselines import DisentanglingVAE, stats_pool
from speechmask.train.adversaries import grad_reverse
from speechmask.train.data import feature_stats, pad_batch

from . import System
from .common import counted, crop_batch, map_rows
from ..config import BaselineConfig
from ..data import Sent, SuiteData
from ..fit import Cache, FitConfig, digest_arrays, fit, seeded

if TYPE_CHECKING:
    from ..suite import Suite


def new_vae(data: SuiteData) -> DisentanglingVAE:
    """An untrained VAE of the suite's shape (its speaker adversary: the training speakers)."""
    return DisentanglingVAE(data.frontend.n_mels, len(data.speakers(data.content_train)))


def train_vae(data: SuiteData, cfg: BaselineConfig, fit_cfg: FitConfig, cache: Cache,
              progress: bool) -> DisentanglingVAE:
    idx = data.content_train
    speakers = data.speakers(idx)
    vae = seeded(fit_cfg.seed, lambda: new_vae(data))
    vae.norm.fit(*feature_stats(data.fs, idx))
    label = {s: k for k, s in enumerate(speakers)}

    def loss(batch: list[int], g: torch.Generator) -> torch.Tensor:
        rows = [idx[p] for p in batch]
        x, lengths = crop_batch(data.fs.features, rows, cfg.crop_frames, data.floor, g)
        y = torch.tensor([label[data.rows[i]["speaker"]] for i in rows])
        mu, logvar = vae.encode(x)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        recon = vae.decode(z, vae.speaker_code(x, lengths))
        valid = (torch.arange(x.shape[1])[None] < lengths[:, None]).float()
        l1 = (((recon - x) / vae.norm.std).abs().mean(-1) * valid).sum() / valid.sum()
        kl = ((-0.5 * (1 + logvar - mu ** 2 - logvar.exp())).sum(-1) * valid).sum() / valid.sum()
        adv = vae.adversary(stats_pool(grad_reverse(mu, cfg.adversary).transpose(1, 2), lengths))
        return l1 + 0.02 * kl + F.cross_entropy(adv, y)

    def train() -> None:
        fit(vae, loss, len(idx), fit_cfg, desc="train vae baseline", progress=progress)
        x, lengths = pad_batch([data.fs.features[i] for i in idx[:256]], data.floor)
        vae.set_neutral(x, lengths)

    key = Cache.key("vae", cfg, fit_cfg, digest_arrays(data.fs.features[i] for i in idx))
    return cache.get_or_fit(vae, "vae", key, train)


def vae(data: SuiteData, model: DisentanglingVAE) -> Sent:
    return Sent(map_rows(lambda x, n: model.sent(x), data.fs.features, data.floor))


class VAE(System):
    expected_cost = 4.0
    build_cost = 3.0

    def __init__(self) -> None:
        self.model: DisentanglingVAE | None = None  # trained by the first `build`

    def build(self, suite: Suite) -> Sent:
        if self.model is None:
            b = suite.cfg.baselines
            self.model = train_vae(suite.data, b, FitConfig(suite.cfg.steps(b.vae_steps),
                                                            seed=suite.cfg.seed),
                                   suite.cache, suite.progress)
        return vae(suite.data, self.model)

    def cost(self, suite: Suite) -> dict[str, int]:
        return counted(seeded(0, lambda: new_vae(suite.data)).device_part(), suite)
