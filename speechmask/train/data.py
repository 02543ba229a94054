"""Features cached once per corpus (compact arrays, no pickle), split selection, padded batches."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..atomic import atomic_output
from ..errors import ManifestError
from ..features import FrontendConfig
from ..parallel import default_jobs, progress_map

CACHE_DIR_NAME = ".speechmask-cache"
# part of every feature-cache key: bump it when the cached content changes meaning, so caches an
# older version wrote are recomputed (each version's reason: CHANGELOG.md)
FEATURE_CACHE_VERSION = 2


@dataclass
class FeatureSet:
    """A manifest's rows and their float log-mel features `(T_i, n_mels)`, in manifest order."""

    manifest: Path
    rows: list[dict]
    features: list[np.ndarray]
    frontend: FrontendConfig

    def select(self, split_field: str, part: str) -> list[int]:
        """Indices of rows whose `split_field` ('split' or 'speaker_split') equals `part`."""
        if split_field not in ("split", "speaker_split"):
            raise ManifestError(f"split field must be 'split' or 'speaker_split', got {split_field!r}")
        idx = [i for i, r in enumerate(self.rows) if r[split_field] == part]
        if not idx:
            raise ManifestError(f"{self.manifest}: no utterances with {split_field} == {part!r}")
        return idx


def _features_of(args: tuple[str, dict]) -> tuple[str, np.ndarray]:
    from ..audio import read_adc
    from ..features import log_mel_numpy

    path, fe = args
    # the features of exactly what the device's ADC path delivers (16-bit PCM)
    return path, log_mel_numpy(read_adc(path).astype(np.float64),
                               FrontendConfig.from_dict(fe)).astype(np.float32)


def load_features(manifest: str | os.PathLike, fe: FrontendConfig = FrontendConfig(), *,
                  cache_dir: str | os.PathLike | None = None, jobs: int | None = None,
                  progress: bool | None = None) -> FeatureSet:
    """Read a manifest and its features, computing them once and caching them next to it.

    The cache key hashes the manifest's bytes and the front-end config, so editing either
    recomputes. Files: `<cache_dir>/features-<key>.npz` (`data` `(sum T, n_mels)`, `offsets`).
    """
    from ..corpus.manifest import read_manifest, resolve_audio

    manifest = Path(manifest)
    rows = read_manifest(manifest)
    key = hashlib.sha256(f"v{FEATURE_CACHE_VERSION}".encode() + manifest.read_bytes() +
                         json.dumps(fe.to_dict(), sort_keys=True).encode()
                         ).hexdigest()[:20]
    folder = Path(cache_dir) if cache_dir else manifest.resolve().parent / CACHE_DIR_NAME
    path = folder / f"features-{key}.npz"
    cached = load_ragged(path, len(rows))
    if cached is not None:
        return FeatureSet(manifest, rows, cached, fe)
    paths = [str(resolve_audio(manifest, r)) for r in rows]
    # results arrive in completion order (several workers): key them by the path they carry
    by_path = dict(progress_map(_features_of, [(p, fe.to_dict()) for p in dict.fromkeys(paths)],
                                jobs=jobs or default_jobs(), desc="caching features",
                                disable=progress is False))
    feats = [by_path[p] for p in paths]
    save_ragged(path, feats)
    return FeatureSet(manifest, rows, feats, fe)


def save_ragged(path: Path, arrays: list[np.ndarray]) -> None:
    """Arrays `(T_i, F)` of one width to one .npz (`data` `(sum T, F)`, `offsets`), atomically."""
    with atomic_output(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, data=np.concatenate(arrays),
                 offsets=np.cumsum([0] + [a.shape[0] for a in arrays]))


def load_ragged(path: Path, count: int) -> list[np.ndarray] | None:
    """The `count` arrays `save_ragged` wrote to `path`; None if the file is missing, unreadable
    or holds another number of arrays (the caller recomputes)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            data, offsets = z["data"], z["offsets"]
    except (OSError, ValueError, KeyError):
        return None
    return np.split(data, offsets[1:-1]) if offsets.size == count + 1 else None


def feature_stats(fs: FeatureSet, idx: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-band mean and std over every frame of the selected utterances."""
    return array_stats(fs.features, idx)


def array_stats(arrays: list[np.ndarray], idx: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-dimension mean and std over every row of `arrays[i]` for i in idx."""
    frames = np.concatenate([arrays[i] for i in idx]).astype(np.float64)
    return (torch.tensor(frames.mean(0), dtype=torch.float32),
            torch.tensor(frames.std(0), dtype=torch.float32))


def pad_batch(feats: list[np.ndarray], pad_value: float, total: int | None = None
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """List of `(T_i, F)` -> `(B, T_max, F)` padded with `pad_value`, and lengths `(B,)`.
    `total` forces T_max (all DDP ranks pad a global batch to one length)."""
    lengths = torch.tensor([f.shape[0] for f in feats], dtype=torch.long)
    t = int(total if total is not None else lengths.max())
    out = torch.full((len(feats), t, feats[0].shape[1]), pad_value, dtype=torch.float32)
    for i, f in enumerate(feats):
        out[i, : f.shape[0]] = torch.from_numpy(f[:t])
    return out, lengths.clamp_max(t)


def batch_indices(n_items: int, batch_size: int, seed: int, step: int) -> list[int]:
    """Positions (0..n_items-1) of the global batch at `step`: a seeded permutation per epoch,
    cut into `n_items // batch_size` batches (the remainder differs every epoch). A pure
    function of (seed, step), so a resumed or distributed run sees the same batches."""
    per_epoch = max(1, n_items // batch_size)
    epoch, k = divmod(step, per_epoch)
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    perm = torch.randperm(n_items, generator=g).tolist()
    return perm[k * batch_size: (k + 1) * batch_size]


def steps_per_epoch(n_items: int, batch_size: int) -> int:
    return max(1, n_items // batch_size)
