"""The protections the suite compares: each turns the clean corpus into what it would send.

`all_offload` sends everything; `random` withholds half the segments at random; `mcadams`
anonymises the waveform (VoicePrivacy B2); `vae` and `ppslu` send learned encoder outputs;
`speechmask` sends what the trained mask lets through; `on_device` sends nothing.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from speechmask.audio import read_adc
from speechmask.corpus.manifest import resolve_audio
from speechmask.features import log_mel_numpy
from speechmask.masking import mask_batch
from speechmask.models.baselines import DisentanglingVAE, PPSLUEncoder, stats_pool
from speechmask.models.gates import GateConfig, expand_gates, mask_waveform
from speechmask.models.mask import MaskGenerator
from speechmask.parallel import default_jobs, progress_map
from speechmask.train.adversaries import ctc_loss, grad_reverse
from speechmask.train.data import feature_stats, load_ragged, pad_batch, save_ragged

from .data import Sent, SuiteData
from .fit import Cache, FitConfig, digest_arrays, fit, seeded
from .mcadams import McAdamsConfig, anonymise

SYSTEMS = ("all_offload", "random", "mcadams", "vae", "ppslu", "speechmask", "on_device")
INT8 = "speechmask_int8"  # with --int8: the exported int8 model's gates, beside the float ones


@dataclass(frozen=True)
class BaselineConfig:
    """Training of the learned baselines and the random mask's rate."""

    random_open: float = 0.5
    vae_steps: int = 300
    ppslu_steps: int = 500
    crop_frames: int = 160  # VAE training crops (1.6 s)
    adversary: float = 0.5  # gradient-reversal weight of the VAE's speaker adversary
    # PPSLU: share of its steps trained with a forward CTC auxiliary and no adversary, then the
    # final weight of its (speaker and CTC) adversaries: with 0.5 its intent accuracy fell to
    # 21 % on the built-in corpus, with 0.2 it keeps 38 %
    ppslu_warmup: float = 0.5
    ppslu_adversary: float = 0.2


def map_rows(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], feats: list[np.ndarray],
             floor: float, stride: int = 1, batch: int = 64) -> list[np.ndarray]:
    """Apply a batched `(B, T, F), lengths -> (B, T / stride, D)` function to every utterance."""
    out: list[np.ndarray] = []
    with torch.no_grad():
        for s in range(0, len(feats), batch):
            x, lengths = pad_batch(feats[s:s + batch], floor)
            y = fn(x, lengths).numpy()
            n = ((lengths - 1) // stride + 1).tolist()
            out += [y[k, : n[k]].astype(np.float32) for k in range(len(n))]
    return out


def crop_batch(feats: list[np.ndarray], rows: list[int], frames: int | None, floor: float,
               g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Padded batch of `rows`, each cut to a random window of at most `frames` frames."""
    parts = []
    for i in rows:
        f = feats[i]
        if frames is not None and f.shape[0] > frames:
            start = int(torch.randint(0, f.shape[0] - frames + 1, (1,), generator=g))
            f = f[start:start + frames]
        parts.append(f)
    return pad_batch(parts, floor)


def _gated(data: SuiteData, gates: list[np.ndarray], gate: GateConfig) -> Sent:
    """Sent features, withheld flags and masked audio for per-utterance binary gates `(S_i, G)`."""
    fe, floor = data.frontend, data.floor
    seg_frames = gate.frames_per_segment(fe)
    edges = gate.band_edges(fe.n_mels)
    feats, withheld = [], []
    for f, g in zip(data.fs.features, gates):
        keep = expand_gates(torch.from_numpy(g)[None], f.shape[0], seg_frames, edges)[0].numpy() > 0
        # binary gates: a feature is sent as is or replaced by the floor value, which is what
        # mask_features computes, without its exp/log over every value
        feats.append(np.where(keep, f, np.float32(floor)).astype(np.float32))
        withheld.append(~keep)

    def masked_audio(i: int) -> np.ndarray:
        return mask_waveform(data.wave(i), gates[i][:, 0], gate.samples_per_segment(fe))

    audio = masked_audio if gate.band_groups == 1 else None  # band gates: features only
    test = data.content_test
    open_fraction = float(np.concatenate([gates[i].ravel() for i in test]).mean())
    return Sent(feats, withheld=withheld, audio=audio, open_fraction=open_fraction)


def all_offload(data: SuiteData) -> Sent:
    return Sent(list(data.fs.features), audio=data.wave, open_fraction=1.0)


def random_mask(data: SuiteData, gate: GateConfig, open_rate: float, seed: int) -> Sent:
    """Each segment (x band group) open with probability `open_rate`, seeded per utterance."""
    seg_frames = gate.frames_per_segment(data.frontend)
    gates = []
    for row, f in zip(data.rows, data.fs.features):
        rng = np.random.default_rng([seed, zlib.crc32(row["id"].encode())])
        gates.append((rng.random((f.shape[0] // seg_frames, gate.band_groups)) < open_rate)
                     .astype(np.float32))
    return _gated(data, gates, gate)


def speechmask_mask(data: SuiteData, mask: MaskGenerator) -> Sent:
    """The trained mask's binary gates, as the device computes them."""
    gates = []
    with torch.no_grad():
        for s in range(0, len(data.rows), 64):
            feats = data.fs.features[s:s + 64]
            x, lengths = pad_batch(feats, data.floor)
            _, g, _ = mask_batch(mask.eval(), x, lengths)
            n = mask.cfg.frames_per_segment
            gates += [g[k, : f.shape[0] // n].numpy() for k, f in enumerate(feats)]
    return _gated(data, gates, mask.cfg.gate)


def speechmask_int8(data: SuiteData, mask: MaskGenerator, model: bytes,
                    progress: bool = False) -> Sent:
    """The exported int8 TFLite model's binary gates, as the device computes them: its own
    closed loop (int8 histories and gates fed back), on LiteRT's reference kernels (those TFLite
    Micro matches within 1 LSB; `speechmask export` checks it)."""
    from tqdm.auto import tqdm

    from speechmask.device.int8 import LiteRT, int8_gates

    litert = LiteRT(model, mask.cfg)  # refuses a model whose inputs do not fit this mask
    gates = [int8_gates(litert, f)[1] for f in tqdm(data.fs.features, desc="int8 gates",
                                                     disable=not progress, leave=False)]
    return _gated(data, gates, mask.cfg.gate)


def _mcadams_features(args: tuple) -> tuple[int, np.ndarray]:
    i, path, utt_id, seed, cfg, frontend = args
    wave = anonymise(read_adc(path), utt_id, seed, cfg)
    return i, log_mel_numpy(wave.astype(np.float64), frontend).astype(np.float32)


def mcadams(data: SuiteData, seed: int, cache: Cache, progress: bool, cfg=McAdamsConfig(),
            jobs: int | None = None) -> Sent:
    """VoicePrivacy B2 on every waveform (alpha ~ U[0.5, 0.9] per utterance), then log-mel."""
    key = Cache.key("mcadams", cfg, seed, digest_arrays(data.fs.features[:50]),
                    [r["id"] for r in data.rows])
    path = cache.path("mcadams-features", key)
    feats = load_ragged(path.with_suffix(".npz"), len(data.rows)) if path is not None else None
    if feats is None:
        items = [(i, str(resolve_audio(data.fs.manifest, r)), r["id"], seed, cfg, data.frontend)
                 for i, r in enumerate(data.rows)]
        done = dict(progress_map(_mcadams_features, items, jobs=jobs or default_jobs(),
                                 desc="mcadams", disable=not progress))
        feats = [done[i] for i in range(len(data.rows))]
        if path is not None:
            save_ragged(path.with_suffix(".npz"), feats)

    def audio(i: int) -> np.ndarray:
        return anonymise(data.wave(i), data.rows[i]["id"], seed, cfg)
    return Sent(feats, audio=audio)


def train_vae(data: SuiteData, cfg: BaselineConfig, fit_cfg: FitConfig, cache: Cache,
              progress: bool) -> DisentanglingVAE:
    idx = data.content_train
    speakers = data.speakers(idx)
    vae = seeded(fit_cfg.seed, lambda: DisentanglingVAE(data.frontend.n_mels, len(speakers)))
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


def train_ppslu(data: SuiteData, cfg: BaselineConfig, fit_cfg: FitConfig, cache: Cache,
                progress: bool) -> tuple[PPSLUEncoder, list[str]]:
    idx = data.content_train
    speakers = data.speakers(idx)
    intents = sorted({data.rows[i]["intent"] for i in idx if data.rows[i]["intent"]})
    model = seeded(fit_cfg.seed,
                   lambda: PPSLUEncoder(data.frontend.n_mels, len(intents), len(speakers)))
    model.norm.fit(*feature_stats(data.fs, idx))
    spk = {s: k for k, s in enumerate(speakers)}
    lab = {s: k for k, s in enumerate(intents)}

    calls = [0]
    warm = int(cfg.ppslu_warmup * fit_cfg.steps)

    def loss(batch: list[int], g: torch.Generator) -> torch.Tensor:
        rows = [idx[p] for p in batch]
        x, lengths = pad_batch([data.fs.features[i] for i in rows], data.floor)
        step = calls[0]
        calls[0] += 1
        rep = model.represent(x, lengths)
        steps = model.steps(lengths).clamp_max(rep.shape[1])
        y = torch.tensor([lab.get(data.rows[i]["intent"], -100) for i in rows])
        task = F.cross_entropy(model.classify(rep, steps), y, label_smoothing=0.05,
                               ignore_index=-100)
        texts = [data.rows[i]["transcript"] for i in rows]
        if step < warm:
            # phase 1: intent with a (forward) CTC auxiliary, as the cloud SLU trains; intent
            # alone from a few hundred utterances memorises the training set (test accuracy
            # 52% against 100% on training in 600 steps)
            return task + ctc_loss(F.log_softmax(model.ctc(rep), -1), steps, texts).mean()
        # phase 2: the adversaries, through gradient reversal, with the weight ramped as in
        # Ganin & Lempitsky (2015), 2 / (1 + e^(-10 p)) - 1, so the encoder is not torn apart
        p = (step - warm) / max(1, fit_cfg.steps - warm)
        weight = cfg.ppslu_adversary * (2 / (1 + math.exp(-10 * p)) - 1)
        hidden = grad_reverse(rep, weight)
        s = torch.tensor([spk[data.rows[i]["speaker"]] for i in rows])
        adv_spk = F.cross_entropy(model.speaker(stats_pool(hidden.transpose(1, 2), steps)), s)
        adv_ctc = ctc_loss(F.log_softmax(model.ctc(hidden), -1), steps, texts).mean()
        return task + adv_spk + adv_ctc

    key = Cache.key("ppslu", cfg, fit_cfg, intents,
                    digest_arrays(data.fs.features[i] for i in idx))
    fit_lr = FitConfig(fit_cfg.steps, fit_cfg.batch_size, 1e-3, fit_cfg.weight_decay,
                       fit_cfg.seed)
    cache.get_or_fit(model, "ppslu", key, lambda: fit(
        model, loss, len(idx), fit_lr, desc="train ppslu baseline", progress=progress))
    return model, intents


def ppslu(data: SuiteData, model: PPSLUEncoder, intents: list[str]) -> Sent:
    reps = map_rows(model.represent, data.fs.features, data.floor, stride=PPSLUEncoder.STRIDE)

    def intent(idx: list[int]) -> list[str]:
        out = []
        with torch.no_grad():
            for s in range(0, len(idx), 64):
                x, lengths = pad_batch([reps[i] for i in idx[s:s + 64]], 0.0)
                out += [intents[k] for k in model.classify(x, lengths).argmax(-1).tolist()]
        return out
    return Sent(reps, log_mel=False, frame_stride=PPSLUEncoder.STRIDE, intent=intent)
