"""What each device holds: the masked features its own mask sent for its utterances, and their
intent labels. `prepare` masks the manifest's utterances once (as each device would, with the
trained mask) and writes one folder per client; clients read only their own. Nothing unmasked is
written: the features saved are the mask's output (`speechmask.masking.mask_batch`)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from speechmask.errors import ConfigError, ManifestError

from .config import FederateConfig


def partition(rows: list[dict], idx: list[int], cfg: FederateConfig) -> list[list[int]]:
    """`cfg.clients` lists of row indices out of `idx`. By speaker (dirichlet_alpha == 0):
    speakers sorted, shuffled with the seed and dealt round-robin, so no speaker is on two
    devices. Non-IID (alpha > 0): each intent's utterances split over the clients in
    Dirichlet(alpha) proportions."""
    rng = np.random.default_rng(cfg.seed)
    parts: list[list[int]] = [[] for _ in range(cfg.clients)]
    if cfg.dirichlet_alpha == 0:
        speakers = sorted({rows[i]["speaker"] for i in idx})
        if len(speakers) < cfg.clients:
            raise ConfigError(f"{len(speakers)} speakers cannot fill {cfg.clients} clients "
                              "(one speaker or more each)", field="clients")
        rng.shuffle(speakers)
        owner = {s: k % cfg.clients for k, s in enumerate(speakers)}
        for i in idx:
            parts[owner[rows[i]["speaker"]]].append(i)
        return parts
    by_intent: dict[str, list[int]] = {}
    for i in idx:
        by_intent.setdefault(rows[i]["intent"], []).append(i)
    for intent in sorted(by_intent):
        members = np.array(by_intent[intent])
        rng.shuffle(members)
        cuts = (np.cumsum(rng.dirichlet([cfg.dirichlet_alpha] * cfg.clients))[:-1]
                * len(members)).astype(int)
        for k, chunk in enumerate(np.split(members, cuts)):
            parts[k] += chunk.tolist()
    empty = [k for k, p in enumerate(parts) if not p]
    if empty:
        raise ConfigError(f"clients {empty} got no utterances with --dirichlet-alpha "
                          f"{cfg.dirichlet_alpha} and seed {cfg.seed}; raise alpha or lower "
                          "--clients", field="dirichlet_alpha")
    return [sorted(p) for p in parts]


@dataclass
class ClientData:
    features: list[np.ndarray]  # masked log-mel, (T_i, n_mels) float32
    labels: np.ndarray          # intent indices
    speakers: list[str]


def masked(mask, features: list[np.ndarray], litert=None,
           progress: bool = False) -> list[np.ndarray]:
    """What the device sends for each utterance (one at a time: no padding effects): with
    `litert` (`device.int8.LiteRT` on the .tflite `speechmask export` wrote from `mask`), the
    gates as the device computes them, the int8 model's own closed loop."""
    import torch

    from speechmask.masking import mask_batch

    if litert is not None:
        from tqdm.auto import tqdm

        from speechmask.device.int8 import int8_gates
        from speechmask.masking import sent_with_gates

        cfg = mask.cfg
        return [sent_with_gates(f, int8_gates(litert, f)[1], cfg.gate, cfg.frontend, cfg)[0]
                for f in tqdm(features, desc="int8 gates", disable=not progress, leave=False)]

    out = []
    for f in features:
        x = torch.as_tensor(f, dtype=torch.float32)[None]
        sent = mask_batch(mask, x, torch.tensor([f.shape[0]]))[0][0].numpy()
        out.append(sent.astype(np.float32))
    return out


def write_client(folder: Path, data: ClientData) -> None:
    from speechmask.train.data import save_ragged

    folder.mkdir(parents=True, exist_ok=True)
    save_ragged(folder / "features.npz", data.features)
    (folder / "labels.json").write_text(json.dumps({"labels": data.labels.tolist(),
                                                    "speakers": data.speakers}))


def read_client(folder: Path) -> ClientData:
    from speechmask.train.data import load_ragged

    meta_path = folder / "labels.json"
    if not meta_path.is_file():
        raise ManifestError(f"{folder}: no client data (labels.json missing)")
    meta = json.loads(meta_path.read_text())
    feats = load_ragged(folder / "features.npz", len(meta["labels"]))
    if feats is None:
        raise ManifestError(f"{folder / 'features.npz'}: missing or does not match labels.json")
    return ClientData(feats, np.array(meta["labels"], np.int64), meta["speakers"])
