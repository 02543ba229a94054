"""`mcadams`: VoicePrivacy baseline B2 on the device, McAdams-coefficient anonymisation of the
waveform; what is sent is the anonymised audio (and its log-mel)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from speechmask.audio import read_adc
from speechmask.corpus.manifest import resolve_audio
from speechmask.features import log_mel_numpy
from speechmask.parallel import default_jobs, progress_map
from speechmask.train.data import load_ragged, save_ragged

from . import System
from ..data import Sent, SuiteData
from ..fit import Cache, digest_arrays
from ..mcadams import McAdamsConfig, anonymise, mcadams_cost

if TYPE_CHECKING:
    from ..suite import Suite


def _features(args: tuple) -> tuple[int, np.ndarray]:
    i, path, utt_id, seed, cfg, frontend = args
    wave = anonymise(read_adc(path), utt_id, seed, cfg)
    return i, log_mel_numpy(wave.astype(np.float64), frontend).astype(np.float32)


def anonymised(data: SuiteData, seed: int, cache: Cache, progress: bool,
               cfg: McAdamsConfig = McAdamsConfig(), jobs: int | None = None) -> Sent:
    """VoicePrivacy B2 on every waveform (alpha drawn per utterance from `cfg`'s range), then
    log-mel; the features are cached."""
    key = Cache.key("mcadams", cfg, seed, digest_arrays(data.fs.features[:50]),
                    [r["id"] for r in data.rows])
    path = cache.path("mcadams-features", key)
    feats = load_ragged(path.with_suffix(".npz"), len(data.rows)) if path is not None else None
    if feats is None:
        items = [(i, str(resolve_audio(data.fs.manifest, r)), r["id"], seed, cfg, data.frontend)
                 for i, r in enumerate(data.rows)]
        done = dict(progress_map(_features, items, jobs=jobs or default_jobs(),
                                 desc="mcadams", disable=not progress))
        feats = [done[i] for i in range(len(data.rows))]
        if path is not None:
            save_ragged(path.with_suffix(".npz"), feats)

    def audio(i: int) -> np.ndarray:
        return anonymise(data.wave(i), data.rows[i]["id"], seed, cfg)
    return Sent(feats, audio=audio)


class McAdams(System):
    expected_cost = 3.0
    build_cost = 1.0

    def build(self, suite: Suite) -> Sent:
        return anonymised(suite.data, suite.cfg.seed, suite.cache, suite.progress,
                          jobs=suite.inner_jobs)

    def cost(self, suite: Suite) -> dict[str, int]:
        return mcadams_cost()
