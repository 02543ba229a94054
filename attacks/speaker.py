"""Speaker attackers under the VoicePrivacy protocol: an x-vector embedder, enrollment and trial
lists from the speaker-disjoint test part, and the ignorant, lazy-informed and semi-informed
attackers' EER, closed-set speaker identification and gender accuracy."""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from speechmask.train.data import array_stats, pad_batch

from .config import SpeakerConfig
from .data import AttackError, SuiteData
from .fit import Cache, EarlyStop, FitConfig, digest_arrays, fit, seeded, warm_start
from .metrics import det_points, eer
from .nets import SpeakerEmbedder


@dataclass
class Trials:
    """Enrollment utterances per test speaker, trial utterances, and the trial pairs: every
    trial utterance against every enrolled speaker of the same gender (VoicePrivacy's lists are
    gender-dependent), trial utterances subsampled so both genders count equally."""

    speakers: list[str]
    enroll: dict[str, list[int]]
    utterances: list[int]
    pairs: list[tuple[int, str]]  # (trial utterance, claimed speaker)

    @classmethod
    def build(cls, data: SuiteData, cfg: SpeakerConfig, seed: int = 0) -> "Trials":
        by_speaker = data.by_speaker(data.speaker_test)
        gender = {s: data.rows[v[0]]["gender"] or "unknown" for s, v in by_speaker.items()}
        usable = {s: v for s, v in by_speaker.items() if len(v) > cfg.enroll_per_speaker}
        groups: dict[str, list[str]] = {}
        for s in sorted(usable):
            groups.setdefault(gender[s], []).append(s)
        groups = {g: v for g, v in groups.items() if len(v) >= 2}
        if not groups:
            raise AttackError(
                f"{data.fs.manifest}: too few speakers for verification trials: the "
                f"speaker_split test part needs at least 2 speakers of one gender with more than "
                f"{cfg.enroll_per_speaker} utterances each (has {len(by_speaker)} speakers: "
                f"{dict(sorted((s, len(v)) for s, v in by_speaker.items()))})")
        enroll = {s: usable[s][: cfg.enroll_per_speaker] for v in groups.values() for s in v}
        per_gender = {g: [i for s in v for i in usable[s][cfg.enroll_per_speaker:]]
                      for g, v in groups.items()}
        n = min(len(v) for v in per_gender.values())
        rng = np.random.default_rng([seed, zlib.crc32(b"trials")])
        utterances, pairs = [], []
        for g, v in sorted(per_gender.items()):
            chosen = sorted(rng.choice(v, size=n, replace=False).tolist())
            utterances += chosen
            pairs += [(i, s) for i in chosen for s in groups[g]]
        return cls(sorted(enroll), enroll, utterances, pairs)


def train_embedder(data: SuiteData, feats: list[np.ndarray], *, cfg: SpeakerConfig, steps: int,
                   stride: int, cache: Cache, name: str, init: SpeakerEmbedder | None = None,
                   seed: int = 0, progress: bool = True,
                   stop: EarlyStop | None = None) -> SpeakerEmbedder:
    """Speaker classifier over the speaker_split training speakers, on `feats`, starting from
    `init` when given (every layer whose shape matches, as in `content.train_asr`). With `stop`,
    the training speakers' dev utterances are held out and training stops once the
    classification loss on them stops improving."""
    idx, dev_rows = data.speaker_dev_split() if stop else (data.speaker_train, [])
    speakers = data.speakers(idx)
    label = {s: k for k, s in enumerate(speakers)}
    model = seeded(seed, lambda: SpeakerEmbedder(feats[idx[0]].shape[1], len(speakers)))
    if init is None or "norm.mean" in warm_start(model, init):
        model.norm.fit(*array_stats(feats, idx))
    crop = max(8, cfg.crop_frames // stride)
    pad = data.floor if stride == 1 else 0.0
    fcfg = FitConfig(steps, lr=cfg.lr if init is None else cfg.lr / 2, seed=seed)

    def loss(batch: list[int], g: torch.Generator) -> torch.Tensor:
        parts = []
        for p in batch:
            f = feats[idx[p]]
            if f.shape[0] > crop:
                s = int(torch.randint(0, f.shape[0] - crop + 1, (1,), generator=g))
                f = f[s:s + crop]
            parts.append(f)
        x, lengths = pad_batch(parts, pad)
        y = torch.tensor([label[data.rows[idx[p]]["speaker"]] for p in batch])
        return F.cross_entropy(model(x, lengths), y, label_smoothing=0.1)

    init_key = digest_arrays(p.detach().numpy() for p in init.parameters()) if init else None

    def dev() -> float:  # whole utterances, no smoothing: how well it tells them apart
        total = 0.0
        for s in range(0, len(dev_rows), 64):
            rows = dev_rows[s:s + 64]
            x, lengths = pad_batch([feats[i] for i in rows], pad)
            y = torch.tensor([label[data.rows[i]["speaker"]] for i in rows])
            total += float(F.cross_entropy(model(x, lengths), y, reduction="sum"))
        return total / len(dev_rows)

    key = Cache.key(name, cfg, fcfg, stride, init_key, speakers,
                    digest_arrays(feats[i] for i in idx), *(() if stop is None else (stop,)))
    return cache.get_or_fit(model, name, key, lambda: fit(
        model, loss, len(idx), fcfg, desc=f"train {name}", progress=progress,
        dev=dev if stop else None, stop=stop))


@torch.no_grad()
def embed(model: SpeakerEmbedder, feats: list[np.ndarray], idx: list[int], pad: float
          ) -> np.ndarray:
    """L2-normalised embeddings `(len(idx), 128)`."""
    order = sorted(range(len(idx)), key=lambda k: feats[idx[k]].shape[0])  # little padding
    out = np.zeros((len(idx), model.embedding.out_features), np.float32)
    for s in range(0, len(order), 64):
        part = order[s:s + 64]
        x, lengths = pad_batch([feats[idx[k]] for k in part], pad)
        out[part] = F.normalize(model.eval().embed(x, lengths), dim=-1).numpy()
    return out


def verify(data: SuiteData, trials: Trials, model: SpeakerEmbedder, enroll_feats, trial_feats,
           pad_enroll: float, pad_trial: float, gender_train: tuple[np.ndarray, list[str]]
           ) -> dict:
    """EER over the trial pairs (cosine scores against each speaker's mean enrollment
    embedding), closed-set identification among the enrolled speakers, gender accuracy of a
    logistic regression fitted on `gender_train` (embeddings, genders)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    centroids = {}
    for s in trials.speakers:
        e = embed(model, enroll_feats, trials.enroll[s], pad_enroll).mean(0)
        centroids[s] = e / max(np.linalg.norm(e), 1e-9)
    test = embed(model, trial_feats, trials.utterances, pad_trial)
    row_of = {i: k for k, i in enumerate(trials.utterances)}
    target, nontarget = [], []
    for i, s in trials.pairs:
        score = float(test[row_of[i]] @ centroids[s])
        (target if data.rows[i]["speaker"] == s else nontarget).append(score)
    rate, threshold = eer(target, nontarget)
    matrix = np.stack([centroids[s] for s in trials.speakers])
    guess = (test @ matrix.T).argmax(1)
    truth = [data.rows[i]["speaker"] for i in trials.utterances]
    ident = float(np.mean([trials.speakers[k] == t for k, t in zip(guess, truth)]))
    x, genders = gender_train
    gender_acc = None
    if len(set(genders)) > 1:
        clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(x, genders)
        want = [data.rows[i]["gender"] for i in trials.utterances]
        gender_acc = float(np.mean(clf.predict(test) == np.array(want, dtype=object)))
    fpr, fnr = det_points(target, nontarget)
    return {"eer": rate, "threshold": threshold, "speaker_id_acc": ident,
            "gender_acc": gender_acc, "target_trials": len(target),
            "nontarget_trials": len(nontarget),
            "det": {"fpr": fpr[:: max(1, len(fpr) // 200)].tolist(),
                    "fnr": fnr[:: max(1, len(fnr) // 200)].tolist()}}


def gender_training(data: SuiteData, model: SpeakerEmbedder, feats: list[np.ndarray], pad: float,
                    limit: int = 200) -> tuple[np.ndarray, list[str]]:
    """Embeddings and genders of (up to `limit`) speaker-training utterances with a gender."""
    idx = [i for i in data.speaker_train if data.rows[i]["gender"]][:: max(
        1, len(data.speaker_train) // limit)]
    return embed(model, feats, idx, pad), [data.rows[i]["gender"] for i in idx]
