"""Front-end: integer (firmware reference) vs float parity (SNR) and speed per second of audio.

Speeds are of the Python implementations (numpy int64 reference, numpy float64, torch float32 on
CPU); the firmware's own cost is measured by the firmware issue. Medians over `--repeats`.
Usage: python benchmarks/bench_frontend.py [--manifest M] [--utterances 40] [--repeats 5]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from common import median_seconds, report  # noqa: E402

from speechmask.audio import from_pcm16, read_audio, to_pcm16  # noqa: E402
from speechmask.corpus.manifest import read_manifest, resolve_audio  # noqa: E402
from speechmask.corpus.stats import snr_db  # noqa: E402
from speechmask.features import FrontendConfig, LogMel, log_mel_numpy  # noqa: E402
from speechmask.features_int import dequantize, log_mel_int  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--manifest", type=Path, default=None,
                    help="corpus to measure on (default: a fresh 8-speaker built-in corpus)")
    ap.add_argument("--utterances", type=int, default=40)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    tmp = None
    if args.manifest is None:
        from speechmask.corpus.synth import SynthConfig, synthesize
        from speechmask.corpus.voices import resolve_engines

        tmp = Path(tempfile.mkdtemp(prefix="bench-frontend-"))
        synthesize(tmp, SynthConfig(8, 5, seed=7, engines=resolve_engines(None)), jobs=2,
                   progress=False)
        args.manifest = tmp / "manifest.jsonl"
    try:
        rows = read_manifest(args.manifest)[: args.utterances]
        pcms = [to_pcm16(read_audio(resolve_audio(args.manifest, r))) for r in rows]
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    cfg = FrontendConfig()
    snrs = [snr_db(log_mel_numpy(from_pcm16(p).astype(np.float64), cfg),
                   dequantize(log_mel_int(p, cfg), cfg)) for p in pcms]
    audio_s = sum(p.size for p in pcms) / cfg.sample_rate
    import torch

    torch.set_num_threads(1)
    module = LogMel(cfg)
    waves = [torch.tensor(from_pcm16(p)) for p in pcms]
    impls = {
        "int_numpy": lambda: [log_mel_int(p, cfg) for p in pcms],
        "float_numpy": lambda: [log_mel_numpy(from_pcm16(p), cfg) for p in pcms],
        "float_torch": lambda: [module(w) for w in waves],
    }
    ms_per_s = {}
    for name, fn in impls.items():
        fn()  # warm-up
        med, _ = median_seconds(fn, args.repeats)
        ms_per_s[name] = 1000 * med / audio_s
    record = {"utterances": len(pcms), "audio_s": round(audio_s, 1), "config": cfg.to_dict(),
              "snr_db_median": round(float(np.median(snrs)), 2),
              "snr_db_min": round(float(np.min(snrs)), 2), "snr_target_db": 30,
              "ms_per_audio_second": {k: round(v, 3) for k, v in ms_per_s.items()},
              "int_vs_float_numpy_time_ratio": round(ms_per_s["int_numpy"] / ms_per_s["float_numpy"], 2)}
    table = [("utterances", f"{len(pcms)} ({audio_s:.0f} s of audio)"),
             ("int16 vs float SNR", f"median {record['snr_db_median']} dB, min "
                                    f"{record['snr_db_min']} dB (target >= 30 dB)")]
    table += [(f"{k} (1 thread)", f"{v:.2f} ms per second of audio") for k, v in ms_per_s.items()]
    table.append(("int / float numpy time", f"{record['int_vs_float_numpy_time_ratio']}x"))
    report("bench_frontend", record, table)


if __name__ == "__main__":
    main()
