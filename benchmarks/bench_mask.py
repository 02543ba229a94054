"""Mask pipeline on the default built-in corpus: cloud model, mask, fine-tuning, test accuracy.

Targets (issue 3): fine-tuned cloud model on masked input within 3 points of the clean model on
clean input, with at most half the segments open at gamma = 0.15; mask training on 200 clips
converges in at most 2 minutes on 2 CPU cores. Prints one JSON line and a table.
Usage: python benchmarks/bench_mask.py [--corpus DIR] [--work DIR] [--segment-ms 80 ...]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import report  # noqa: E402

from speechmask.corpus.manifest import read_manifest, write_manifest  # noqa: E402
from speechmask.models.gates import GateConfig  # noqa: E402
from speechmask.models.mask import MaskConfig  # noqa: E402
from speechmask.train.evaluate import evaluate  # noqa: E402
from speechmask.train.config import FinetuneConfig, MaskTrainConfig, SLUTrainConfig  # noqa: E402
from speechmask.train.mask import ObjectiveConfig, train_mask  # noqa: E402
from speechmask.train.slu import train_slu  # noqa: E402


def timed(fn, *args, **kwargs):
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0


def subset_manifest(manifest: Path, out: Path, n_train: int) -> Path:
    """The first `n_train` training clips plus every dev clip (mask training evaluates on dev)."""
    rows = read_manifest(manifest)
    train = [r for r in rows if r["split"] == "train"][:n_train]
    for r in train + [r for r in rows if r["split"] == "dev"]:
        r["path"] = str((manifest.parent / r["path"]).resolve())
    write_manifest(out, train + [r for r in rows if r["split"] == "dev"], force=True)
    return out


def device_name(name: str) -> str:
    """What `--device` resolved to, as a reader wants it in the record: 'cpu' or the GPU's name."""
    import torch

    from speechmask.train.dist import pick_device

    device = pick_device(name)
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", type=Path, default=None, help="built-in corpus folder to reuse")
    ap.add_argument("--work", type=Path, default=Path("build/bench_mask"))
    ap.add_argument("--segment-ms", type=float, nargs="+", default=[GateConfig().segment_ms])
    ap.add_argument("--arch", default=MaskConfig().arch)
    ap.add_argument("--gamma", type=float, default=ObjectiveConfig().gamma)
    ap.add_argument("--split-field", default="split", choices=("split", "speaker_split"))
    ap.add_argument("--temperature", type=float, default=GateConfig().beta, help="gate beta")
    ap.add_argument("--device", default=MaskTrainConfig().device,
                    help="where every training runs: auto (CUDA when present), cpu, cuda[:N]")
    ap.add_argument("--convergence-clips", type=int, default=200,
                    help="clips of the mask-convergence timing (SILENCE's 200; 0 skips it: it "
                         "needs the corpus's audio, the other runs only its feature cache)")
    ap.add_argument("--record", default=None,
                    help="record name (default: bench_mask, or bench_mask_<split field>; the "
                         "held-out split of `speechmask data heldout`: bench_mask_heldout)")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    corpus = args.corpus or args.work / "corpus"
    if not (corpus / "manifest.jsonl").exists():
        from speechmask.corpus.synth import SynthConfig, synthesize
        from speechmask.corpus.voices import resolve_engines

        synthesize(corpus, SynthConfig(engines=resolve_engines(None)), progress=False)
    manifest = corpus / "manifest.jsonl"
    quiet = dict(progress=False, split_field=args.split_field, device=args.device)
    slu = args.work / "slu.pt"
    _, t_slu = timed(train_slu, manifest, slu, SLUTrainConfig(**quiet))
    clean = evaluate(manifest, slu, split_field=args.split_field)
    record = {"corpus": str(corpus), "utterances": len(read_manifest(manifest)),
              "device": device_name(args.device),
              "temperature": args.temperature,
              "split_field": args.split_field, "gamma": args.gamma, "arch": args.arch,
              "slu_train_s": round(t_slu, 1), "clean_acc": round(clean["intent_acc"], 4),
              "test_utterances": clean["utterances"], "runs": []}
    table = [("cloud model, clean test input", f"accuracy {clean['intent_acc']:.3f} "
                                               f"({clean['utterances']} utterances)")]
    for seg in args.segment_ms:
        cfg = MaskConfig(arch=args.arch, gate=GateConfig(segment_ms=seg, beta=args.temperature))
        mask = args.work / f"mask_{seg:g}ms.pt"
        _, t_mask = timed(train_mask, manifest, slu, mask, cfg, ObjectiveConfig(gamma=args.gamma),
                          MaskTrainConfig(**quiet))
        tuned = args.work / f"slu_masked_{seg:g}ms.pt"
        _, t_tune = timed(train_slu, manifest, tuned, FinetuneConfig(**quiet),
                          init_slu=slu, mask_path=mask)
        raw = evaluate(manifest, slu, mask, split_field=args.split_field)
        ft = evaluate(manifest, tuned, mask, split_field=args.split_field)
        run = {"segment_ms": seg, "open_fraction": round(ft["open_fraction"], 4),
               "open_fraction_speech": round(ft["open_fraction_speech"], 4),
               "masked_acc_clean_model": round(raw["intent_acc"], 4),
               "masked_acc_finetuned": round(ft["intent_acc"], 4),
               "drop_points": round(100 * (clean["intent_acc"] - ft["intent_acc"]), 2),
               "mask_train_s": round(t_mask, 1), "finetune_s": round(t_tune, 1)}
        record["runs"].append(run)
        table += [(f"{seg:g} ms: open segments", f"{run['open_fraction']:.3f} (target <= 0.5)"),
                  (f"{seg:g} ms: open speech segments", f"{run['open_fraction_speech']:.3f}"),
                  (f"{seg:g} ms: masked, clean model", f"{run['masked_acc_clean_model']:.3f}"),
                  (f"{seg:g} ms: masked, fine-tuned", f"{run['masked_acc_finetuned']:.3f} "
                                                     f"({-run['drop_points']:+.1f} points vs clean;"
                                                     " target <= 3)"),
                  (f"{seg:g} ms: mask / finetune time", f"{t_mask:.0f} s / {t_tune:.0f} s")]
    # convergence on 200 clips (SILENCE reports 30 s on an A40)
    if args.convergence_clips:
        n = args.convergence_clips
        small = subset_manifest(manifest, args.work / f"clips{n}.jsonl", n)
        _, t200 = timed(train_mask, small, slu, args.work / f"mask_{n}.pt",
                        MaskConfig(arch=args.arch), ObjectiveConfig(gamma=args.gamma),
                        MaskTrainConfig(progress=False, device=args.device))
        record[f"mask_{n}_clips_s"] = round(t200, 1)
        table.append((f"mask training, {n} clips",
                      f"{t200:.0f} s (target <= 120 s for 200 clips, 2 cores)"))
    (args.work / "result.json").write_text(json.dumps(record, indent=1))
    # the held-out-speaker run (--split-field speaker_split) keeps its own record
    report("bench_mask", record, table, results_name=args.record or (
        "bench_mask" if args.split_field == "split" else f"bench_mask_{args.split_field}"))


if __name__ == "__main__":
    main()
