"""Ablation of the device-side steps: every step on and off on top of the same trained gates,
scored by the attack suite (utility, content and speaker attackers that retrain).

Each variant sends what the mask's gates open, after a chain of device-side steps on the
features (`speechmask.device`): `normN` the streaming per-band normalisation over N frames (the
step `train mask --send-norm-frames N` puts in the mask), `warpP` random per-utterance frequency
warping up to P % (`device.warp`), `lifterK` cepstral liftering keeping K coefficients
(`device.lifter`), `quantK` each band quantised to K levels (a screening step, not in the
mask: equal-mass bins of the training utterances' values of that band, each value replaced by
its bin's mean, as a device would with K-1 comparisons per value), `scale` with a norm step
the normalisation's scale (`train mask --send-norm-scale`: each band's mean absolute deviation
moved to a target too), `level` the per-frame level removal (`train mask --send-level`,
`device.level`); `gates` alone is the mask with no step. Steps chain in the order norm, warp,
level (as `device.send` runs them in the mask), lifter, quant. The gates are the mask's own
(decided on the raw features, so every variant withholds the same positions); the suite
fine-tunes the cloud model and retrains its informed attackers on each variant's output.
PocketSphinx is left out: the steps have no audio counterpart, so it applies to no variant but
`gates`, whose figure bench_attack.py records.

The record names the variant chosen by the rule of docs/design.md ("Choosing the default"):
among the variants whose intent accuracy is within `--max-drop` points of the gates alone (the
same gates, the cloud model fine-tuned the same way, no step), the one with the highest
semi-informed EER (ties: fewer steps); with `--seeds A B ...`, on each variant's mean over the
seeds. Run it on a corpus the reported figures do not come from (the default's choice), and on
the built-in corpus (the ablation table):

    python benchmarks/bench_ablation.py --manifest build/bench_mask/corpus/manifest.jsonl \\
        --slu build/bench_mask/slu.pt --mask build/bench_mask/mask_40ms.pt
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import report  # noqa: E402

from attacks import systems  # noqa: E402
from attacks.config import ATTACKS, STRENGTHS, SuiteConfig  # noqa: E402
from attacks.data import Sent, SuiteData  # noqa: E402
from attacks.fit import Cache  # noqa: E402
from attacks.runner import run_suite  # noqa: E402
from attacks.suite import Suite  # noqa: E402
from attacks.systems.speechmask import speechmask_mask  # noqa: E402
from speechmask.api import load_mask, load_slu  # noqa: E402
from speechmask.device import send  # noqa: E402
from speechmask.device.lifter import LifterConfig, lifter_float  # noqa: E402
from speechmask.models.config import OFF, MaskConfig, SendConfig  # noqa: E402

VARIANTS = ("gates", "norm16", "norm64", "norm256", "warp10", "warp20", "lifter13",
            "norm64+warp10", "norm64+warp20", "norm256+warp20", "norm64+lifter13",
            "norm256+scale", "norm256+scale+warp10", "level", "norm256+warp20+level")
STEP = re.compile(r"^(norm|warp|lifter|quant)(\d+)$")
METRICS = ("intent_acc", "wer_passive", "wer_informed", "wer_inpainting", "entity_error_rate",
           "eer_ignorant", "eer_lazy_informed", "eer_semi_informed", "speaker_id_acc",
           "gender_acc")


def parse(variant: str) -> dict[str, int]:
    """`norm16+warp20` -> {"norm": 16, "warp": 20}; `gates` -> {}."""
    if variant == "gates":
        return {}
    steps = {}
    for part in variant.split("+"):
        m = STEP.match(part)
        if part in ("scale", "level") and part not in steps:
            steps[part] = 1
            continue
        if m is None or m.group(1) in steps or int(m.group(2)) <= 0:
            raise SystemExit(f"bench_ablation: bad variant {variant!r} (e.g. gates, norm16, "
                             "warp20, lifter13, quant4, norm16+scale+warp20, norm256+warp20+level)")
        steps[m.group(1)] = int(m.group(2))
    if "scale" in steps and "norm" not in steps:
        raise SystemExit(f"bench_ablation: bad variant {variant!r} (scale needs a norm step)")
    return steps


def apply_steps(feats: list[np.ndarray], steps: dict[str, int], mask_cfg: MaskConfig,
                train: list[int]) -> list[np.ndarray]:
    """The chain of float twins over every utterance: the mask's send steps (`device.send`:
    norm, warp with each utterance's level as the mask draws it, level removal), then the
    lifter."""
    send_cfg = SendConfig(norm_frames=steps.get("norm", 0), norm_scale="scale" in steps,
                          warp_max=steps.get("warp", 0) / 100, level="level" in steps)
    cfg = send.calibrate(replace(mask_cfg, send=send_cfg), [feats[i] for i in train])
    out = [send.send_float(f, cfg) for f in feats]
    if "lifter" in steps:
        lc = LifterConfig(steps["lifter"])
        out = [lifter_float(torch.from_numpy(np.asarray(f)), lc).numpy() for f in out]
    out = [np.asarray(f, dtype=np.float32) for f in out]
    if "quant" in steps:
        out = quantise(out, steps["quant"], train)
    return out


def quantise(feats: list[np.ndarray], levels: int, train: list[int]) -> list[np.ndarray]:
    """Each band to `levels` values: equal-mass bins of the training utterances' values of that
    band (numpy's quantiles), each value replaced by the mean of its bin's training values."""
    pooled = np.concatenate([feats[i] for i in train])  # (frames, bands)
    inner = np.quantile(pooled, np.arange(1, levels) / levels, axis=0).T  # (bands, levels-1)
    bins = np.stack([np.searchsorted(e, pooled[:, b]) for b, e in enumerate(inner)], 1)
    centre = np.stack([[pooled[bins[:, b] == k, b].mean() if np.any(bins[:, b] == k)
                        else e[min(k, levels - 2)] for k in range(levels)]
                       for b, e in enumerate(inner)])  # (bands, levels)
    out = []
    for f in feats:
        k = np.stack([np.searchsorted(e, f[:, b]) for b, e in enumerate(inner)], 1)
        out.append(np.take_along_axis(centre.T, k, 0).astype(np.float32))
    return out


def variant_system(name: str, steps: dict[str, int], mask):
    class Variant:
        sends_clean, trains_as, shared = False, None, systems.SHARED
        expected_cost, build_cost = 3.0, 0.0

        def build(self, suite: Suite) -> Sent:
            d = suite.data
            gated = speechmask_mask(d, mask)
            if not steps:
                return Sent(gated.features, withheld=gated.withheld,
                            open_fraction=gated.open_fraction)
            feats = apply_steps(d.fs.features, steps, mask.cfg, d.content_train)
            sent = [np.where(w, np.float32(d.floor), f) for w, f in zip(gated.withheld, feats)]
            return Sent(sent, withheld=gated.withheld, open_fraction=gated.open_fraction)

        def cost(self, suite: Suite) -> dict[str, int]:
            return dict.fromkeys(systems.COST_KEYS, 0)  # the steps' costs: docs/design.md

    return Variant


def default_variant() -> str:
    """The variant name of the mask's default send steps (`SendConfig`)."""
    return send.steps_name(SendConfig())


def choose(rows: dict[str, dict], max_drop: float) -> str | None:
    """The rule of docs/design.md: within `max_drop` intent points of the gates alone, the
    highest semi-informed EER; ties go to fewer steps. (Not the unprotected row: its cloud model
    is the clean one, while every variant's is fine-tuned on this corpus, which lifts them all.)"""
    floor = rows["gates"]["intent_acc"] - max_drop / 100
    fit = [(m["eer_semi_informed"], -len(parse(n)), n) for n, m in rows.items()
           if n != "unprotected" and m["intent_acc"] >= floor - 1e-9
           and m.get("eer_semi_informed") is not None]
    return max(fit)[2] if fit else None


def mean_rows(runs: list[dict[str, dict]]) -> dict[str, dict]:
    """Each variant's metrics averaged over runs with different seeds (None where a run has
    none), the rows the rule reads: one seed's reading of a few points of intent or EER is not
    robust (CHANGELOG, #15)."""
    out = {}
    for v in runs[0]:
        out[v] = {}
        for k in runs[0][v]:
            vals = [r[v].get(k) for r in runs]
            out[v][k] = None if any(x is None for x in vals) else float(np.mean(vals))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--manifest", type=Path, required=True)
    ap.add_argument("--slu", type=Path, required=True, help="the clean cloud model")
    ap.add_argument("--mask", type=Path, required=True, help="the mask whose gates every "
                    "variant uses (its own send steps are ignored)")
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS))
    ap.add_argument("--attacks", nargs="+", choices=ATTACKS,
                    default=["passive", "informed", "inpainting", "speaker"])
    ap.add_argument("--strength", choices=STRENGTHS, default="quick")
    ap.add_argument("--max-drop", type=float, default=3.0,
                    help="intent points a chosen variant may lose against the gates alone")
    ap.add_argument("--cache", type=Path, default=Path("build/bench_ablation/cache"))
    ap.add_argument("--record", default="bench_ablation", help="the record's name")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0],
                    help="seeds of the attackers and the cloud model's fine-tuning; with more "
                         "than one, the rule reads each variant's mean (the first seed's cache "
                         "is --cache, the others' <cache>_seed<N>)")
    ap.add_argument("--seed", type=int, help="one seed (the same as --seeds N)")
    args = ap.parse_args()
    seeds = [args.seed] if args.seed is not None else args.seeds
    if "gates" not in args.variants:
        args.variants.insert(0, "gates")  # the rule's reference
    variants = {v: parse(v) for v in args.variants}
    slu, mask = load_slu(args.slu), load_mask(args.mask)
    # the variants own the steps: the mask contributes its gates, which its steps do not change
    mask.cfg = replace(mask.cfg, send=SendConfig(**OFF))
    data = SuiteData.load(args.manifest, slu.cfg.frontend, "split", progress=False)
    names = []
    for v, steps in variants.items():
        name = "v_" + v.replace("+", "_")
        systems.register(systems.Registration(name, variant_system(name, steps, mask),
                                              f"ablation variant {v}"))
        names.append(name)
    t0 = time.perf_counter()
    runs = []
    for i, seed in enumerate(seeds):
        cfg = SuiteConfig(systems=("all_offload", *names), attacks=tuple(args.attacks),
                          strength=args.strength, seed=seed)
        cache = args.cache if i == 0 else Path(f"{args.cache}_seed{seed}")
        suite = Suite(data, slu, mask, cfg, Cache(cache), progress=True)
        out = run_suite(suite)
        run = {"unprotected": out[0]["metrics"]}
        run.update({v: r["metrics"] for v, r in zip(variants, out[1:])})
        runs.append({v: {k: m.get(k) for k in ("open_fraction", *METRICS)}
                     for v, m in run.items()})
    seconds = time.perf_counter() - t0
    rows = mean_rows(runs)
    chosen = choose(rows, args.max_drop)
    record = {"manifest": str(args.manifest), "slu": str(args.slu), "mask": str(args.mask),
              "strength": args.strength, "attacks": args.attacks, "max_drop": args.max_drop,
              "trials": len(suite.trials().speakers) if "speaker" in args.attacks else 0,
              "seeds": seeds, "variants": rows,
              **({"per_seed": dict(zip(map(str, seeds), runs))} if len(seeds) > 1 else {}),
              "chosen": chosen, "default_variant": default_variant(),
              "seconds": round(seconds, 1)}
    fmt = lambda x: "-" if x is None else f"{100 * x:.1f}"  # noqa: E731
    table = [(v, "  ".join(f"{k}={fmt(m.get(k))}" for k in METRICS)) for v, m in rows.items()]
    table.append(("chosen (rule of docs/design.md)", str(chosen)))
    report(args.record, record, table)


if __name__ == "__main__":
    main()
