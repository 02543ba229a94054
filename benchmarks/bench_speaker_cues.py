"""Speaker cues left in what the device computes, per device-side step: a cheap probe.

For each setting of the device-side steps (none; the streaming per-band normalisation
`speechmask.device.bandnorm` at several lengths; cepstral liftering `speechmask.device.lifter`
at several numbers of kept coefficients; both together), every utterance of the corpus goes through the
firmware's integer front-end and the step, and a linear classifier (scikit-learn's logistic
regression on standardised inputs) identifies the speaker from per-utterance statistics of what
comes out: (a) the band means alone, (b) band means, standard deviations, 10th and 90th
percentiles. Training and test utterances come from the utterance-level `split` (every speaker in
both). No gating: this isolates what the step itself removes.

This is a lower bound on leakage (a linear model on utterance statistics), used to screen steps
before the attack suite's x-vector attackers, which retrain on the step's output, score them.

    python benchmarks/bench_speaker_cues.py --manifest build/bench_mask/corpus/manifest.jsonl
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import report  # noqa: E402

from speechmask.audio import read_audio, to_pcm16  # noqa: E402
from speechmask.corpus.manifest import read_manifest, resolve_audio  # noqa: E402
from speechmask.device.bandnorm import calibrate, normalize_int  # noqa: E402
from speechmask.device.lifter import LifterConfig, lifter_int  # noqa: E402
from speechmask.features import FrontendConfig  # noqa: E402
from speechmask.features_int import log_mel_int  # noqa: E402


def statistics(f: np.ndarray, frac_bits: int) -> np.ndarray:
    x = f.astype(np.float64) / (1 << frac_bits)
    return np.concatenate([x.mean(0), x.std(0), np.percentile(x, 10, 0), np.percentile(x, 90, 0)])


def speaker_id(x: np.ndarray, speakers: np.ndarray, train: list[int], test: list[int]) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000))
    clf.fit(x[train], speakers[train])
    return float((clf.predict(x[test]) == speakers[test]).mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--manifest", type=Path, required=True)
    ap.add_argument("--frames", type=int, nargs="+", default=[16, 64, 256],
                    help="running-mean lengths of the band normalisation to probe")
    ap.add_argument("--keep", type=int, nargs="+", default=[8, 13, 20],
                    help="cepstral coefficients kept by the lifter, to probe")
    args = ap.parse_args()

    fe = FrontendConfig()
    rows = read_manifest(args.manifest)
    feats = [log_mel_int(to_pcm16(read_audio(resolve_audio(args.manifest, r))), fe)
             for r in tqdm(rows, desc="front-end", dynamic_ncols=True)]
    train = [i for i, r in enumerate(rows) if r["split"] == "train"]
    test = [i for i, r in enumerate(rows) if r["split"] == "test"]
    speakers = np.array([r["speaker"] for r in rows])

    # (step, band-norm frames or None, lifter keep or 0); both together at the middle lengths
    settings = ([("none", None, 0)] + [("band_norm_mean", n, 0) for n in args.frames]
                + [("lifter", None, k) for k in args.keep]
                + [("band_norm_mean+lifter", sorted(args.frames)[len(args.frames) // 2],
                    sorted(args.keep)[len(args.keep) // 2])])
    record: dict = {"corpus": str(args.manifest), "speakers": len(set(speakers)),
                    "train_utterances": len(train), "test_utterances": len(test),
                    "chance": 1 / len(set(speakers)), "settings": []}
    table = []
    for step, frames, keep in tqdm(settings, desc="settings", dynamic_ncols=True):
        out = feats
        if frames is not None:  # target means from the training utterances only
            cfg = calibrate([feats[i] for i in train], frames=frames)
            out = [normalize_int(f, cfg) for f in out]
        if keep:
            out = [lifter_int(f, LifterConfig(keep)) for f in out]
        x = np.stack([statistics(f, fe.log_frac_bits) for f in out])
        row = {"step": step, "frames": frames, "keep": keep,
               "speaker_id_means": speaker_id(x[:, :fe.n_mels], speakers, train, test),
               "speaker_id_statistics": speaker_id(x, speakers, train, test)}
        record["settings"].append(row)
        name = ", ".join([step] + ([f"{frames} frames"] if frames else [])
                         + ([f"keep {keep}"] if keep else []))
        table.append((name, f"band means {100 * row['speaker_id_means']:.1f} %, statistics "
                            f"{100 * row['speaker_id_statistics']:.1f} %"))
    table.append(("chance", f"{100 * record['chance']:.1f} %"))
    report("bench_speaker_cues", record, table)


if __name__ == "__main__":
    main()
