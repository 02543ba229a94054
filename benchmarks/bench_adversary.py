"""Privacy-utility of the mask objective's adversary settings, scored by the attack suite.

For each setting (no adversary, speaker adversary, CTC-ASR adversary) this trains a mask against
the given clean cloud model with default settings otherwise (`MaskTrainConfig`, `MaskConfig`,
`ObjectiveConfig`), fine-tunes the cloud model on it (`FinetuneConfig`), and runs the attack
suite's `speechmask` row (`SuiteConfig`'s defaults) with the passive and informed ASR attackers
and the three speaker attackers. One attacker cache is shared (`--cache`; pass bench_attack.py's
`build/bench_attack/cache` to reuse its clean-speech attackers). Prints one JSON line and a table.
  python benchmarks/bench_adversary.py --corpus DIR --slu build/bench_mask/slu.pt
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import report  # noqa: E402

from attacks.config import SuiteConfig  # noqa: E402
from attacks.data import SuiteData, trained_split_field  # noqa: E402
from attacks.fit import Cache  # noqa: E402
from attacks.suite import Suite  # noqa: E402
from speechmask.api import load_mask, load_slu  # noqa: E402
from speechmask.models.mask import MaskConfig  # noqa: E402
from speechmask.train.config import FinetuneConfig, MaskTrainConfig  # noqa: E402
from speechmask.train.mask import ObjectiveConfig, train_mask  # noqa: E402
from speechmask.train.slu import train_slu  # noqa: E402

SETTINGS = {"none": {}, "speaker": {"speaker_adversary": 1.0}, "asr": {"asr_adversary": 1.0}}
KEYS = ("intent_acc", "open_fraction", "wer_passive", "wer_informed", "entity_error_rate",
        "eer_ignorant", "eer_lazy_informed", "eer_semi_informed", "speaker_id_acc")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", type=Path, required=True, help="built-in corpus folder")
    ap.add_argument("--slu", type=Path, required=True, help="clean cloud model")
    ap.add_argument("--work", type=Path, default=Path("build/bench_adversary"))
    ap.add_argument("--cache", type=Path, default=None, help="attacker cache (default: WORK/cache)")
    ap.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    manifest = args.corpus / "manifest.jsonl"
    quiet = dict(progress=False)
    slu = load_slu(args.slu)
    data = SuiteData.load(manifest, slu.cfg.frontend, trained_split_field(args.slu),
                          progress=False)
    cache = Cache(args.cache or args.work / "cache")
    cfg = SuiteConfig(systems=("speechmask",), attacks=("passive", "informed", "speaker"))
    record: dict = {"corpus": str(args.corpus), "settings": []}
    table = []
    for name in args.settings:
        t0 = time.perf_counter()
        mask_path, tuned = args.work / f"mask_{name}.pt", args.work / f"slu_{name}.pt"
        for p in (mask_path, tuned):
            p.unlink(missing_ok=True)
        train_mask(manifest, args.slu, mask_path, MaskConfig(), ObjectiveConfig(**SETTINGS[name]),
                   MaskTrainConfig(**quiet))
        train_slu(manifest, tuned, FinetuneConfig(**quiet), init_slu=args.slu,
                  mask_path=mask_path)
        suite = Suite(data, slu, load_mask(mask_path), cfg, cache, slu_masked=load_slu(tuned),
                      progress=False)
        row = suite.run_system("speechmask")["metrics"]
        record["settings"].append({"setting": name, **SETTINGS[name], **row,
                                   "seconds": round(time.perf_counter() - t0, 1)})
        table.append((f"adversary: {name}", "  ".join(
            f"{k}={'-' if row[k] is None else f'{100 * row[k]:.1f}'}" for k in KEYS)))
    report("bench_adversary", record, table)


if __name__ == "__main__":
    main()
