"""Privacy-utility of the mask objective's adversary settings, measured with probes.

For each setting (no adversary, speaker adversary, CTC-ASR adversary) this trains a mask against
the given clean cloud model, fine-tunes the cloud model on it, and scores utility (test intent
accuracy, open fraction). Leakage is scored with two *probes* trained from scratch on the masked
training features and tested on the masked test features: a closed-set speaker classifier
(speaker-ID accuracy; the utterance-level split shares speakers between train and test) and a
CTC character ASR (greedy decoding, word error rate with jiwer). The same probes on clean
features are the reference. Probes are informed attackers of modest size, not the attack suite
(issue 4): their numbers rank settings, they do not bound what a stronger attacker recovers.
Prints one JSON line and a table.
  python benchmarks/bench_adversary.py --corpus DIR --slu build/bench_mask/slu.pt
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).parent))
from common import report  # noqa: E402

from speechmask.api import load_mask, load_slu  # noqa: E402
from speechmask.masking import mask_batch  # noqa: E402
from speechmask.models.gates import floor_value  # noqa: E402
from speechmask.models.mask import MaskConfig  # noqa: E402
from speechmask.train.adversaries import (ALPHABET, CTCAdversary, SpeakerAdversary,  # noqa: E402
                                          ctc_loss)
from speechmask.train.data import feature_stats, load_features, pad_batch  # noqa: E402
from speechmask.train.evaluate import evaluate  # noqa: E402
from speechmask.train.loop import TrainConfig  # noqa: E402
from speechmask.train.mask import ObjectiveConfig, train_mask  # noqa: E402
from speechmask.train.slu import train_slu  # noqa: E402

SETTINGS = {"none": {}, "speaker": {"speaker_adversary": 1.0}, "asr": {"asr_adversary": 1.0}}


def greedy(log_probs: torch.Tensor, lengths: torch.Tensor) -> list[str]:
    out = []
    for lp, n in zip(log_probs.argmax(-1), lengths):
        ids = torch.unique_consecutive(lp[: int(n)]).tolist()
        out.append(" ".join("".join(ALPHABET[i - 1] for i in ids if i > 0).split()))
    return out


def probe(fs, train_idx, test_idx, masked, steps: int, seed: int = 0) -> dict:
    """Train speaker-ID and CTC probes on `masked[i]` features of train_idx; score on test_idx."""
    import jiwer

    torch.manual_seed(seed)
    speakers = sorted({fs.rows[i]["speaker"] for i in train_idx})
    spk = SpeakerAdversary(fs.frontend.n_mels, len(speakers))
    asr = CTCAdversary(fs.frontend.n_mels)
    for m in (spk, asr):
        m.norm.fit(*feature_stats(fs, train_idx))
    opt = torch.optim.AdamW(list(spk.parameters()) + list(asr.parameters()), lr=2e-3)
    floor = floor_value(fs.frontend)
    g = torch.Generator().manual_seed(seed)
    for step in range(steps):
        rows = [train_idx[int(k)] for k in torch.randint(len(train_idx), (32,), generator=g)]
        x, lengths = pad_batch([masked[i] for i in rows], floor)
        y = torch.tensor([speakers.index(fs.rows[i]["speaker"]) for i in rows])
        lp, n = asr(x, lengths)
        loss = F.cross_entropy(spk(x, lengths), y) + \
            ctc_loss(lp, n, [fs.rows[i]["transcript"] for i in rows]).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    spk.eval(), asr.eval()
    hits, refs, hyps = 0, [], []
    with torch.no_grad():
        for s in range(0, len(test_idx), 64):
            rows = test_idx[s:s + 64]
            x, lengths = pad_batch([masked[i] for i in rows], floor)
            pred = spk(x, lengths).argmax(-1).tolist()
            hits += sum(speakers[p] == fs.rows[i]["speaker"] for p, i in zip(pred, rows))
            hyps += greedy(*asr(x, lengths))
            refs += [fs.rows[i]["transcript"] for i in rows]
    return {"speaker_id_acc": round(hits / len(test_idx), 4),
            "wer_probe": round(jiwer.wer(refs, [h or "<empty>" for h in hyps]), 4)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", type=Path, required=True, help="built-in corpus folder")
    ap.add_argument("--slu", type=Path, default=None, help="clean cloud model (else trained)")
    ap.add_argument("--work", type=Path, default=Path("build/bench_adversary"))
    ap.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    ap.add_argument("--probe-steps", type=int, default=400)
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    manifest = args.corpus / "manifest.jsonl"
    quiet = dict(progress=False)
    slu = args.slu or args.work / "slu.pt"
    if args.slu is None:
        train_slu(manifest, slu, TrainConfig(**quiet))
    fs = load_features(manifest, load_slu(slu).cfg.frontend, progress=False)
    train_idx, test_idx = fs.select("split", "train"), fs.select("split", "test")
    clean_acc = evaluate(manifest, slu)["intent_acc"]
    t0 = time.perf_counter()
    reference = probe(fs, train_idx, test_idx, fs.features, args.probe_steps)
    record = {"corpus": str(args.corpus), "clean_acc": round(clean_acc, 4),
              "probe_steps": args.probe_steps, "clean_probes": reference, "settings": []}
    table = [("clean (all offload)", f"accuracy {clean_acc:.3f}  speaker-ID "
                                     f"{reference['speaker_id_acc']:.3f}  probe WER "
                                     f"{reference['wer_probe']:.3f}  ({time.perf_counter() - t0:.0f} s)")]
    for name in args.settings:
        mask_path, tuned = args.work / f"mask_{name}.pt", args.work / f"slu_{name}.pt"
        for p in (mask_path, tuned):
            p.unlink(missing_ok=True)
        train_mask(manifest, slu, mask_path, MaskConfig(), ObjectiveConfig(**SETTINGS[name]),
                   TrainConfig(lr=5e-3, **quiet))
        train_slu(manifest, tuned, TrainConfig(lr=5e-4, **quiet), init_slu=slu, mask_path=mask_path)
        utility = evaluate(manifest, tuned, mask_path)
        mask = load_mask(mask_path)
        masked = {}
        for s in range(0, len(fs.rows), 64):
            rows = list(range(s, min(s + 64, len(fs.rows))))
            x, lengths = pad_batch([fs.features[i] for i in rows], floor_value(fs.frontend))
            xm = mask_batch(mask, x, lengths)[0]
            for k, i in enumerate(rows):
                masked[i] = xm[k, : fs.features[i].shape[0]].numpy()
        leak = probe(fs, train_idx, test_idx, masked, args.probe_steps)
        row = {"setting": name, **SETTINGS[name], "intent_acc": round(utility["intent_acc"], 4),
               "open_fraction": round(utility["open_fraction"], 4), **leak}
        record["settings"].append(row)
        table.append((f"mask, adversary: {name}",
                      f"accuracy {row['intent_acc']:.3f}  open {row['open_fraction']:.3f}  "
                      f"speaker-ID {row['speaker_id_acc']:.3f}  probe WER {row['wer_probe']:.3f}"))
    (args.work / "result.json").write_text(__import__("json").dumps(record, indent=1))
    report("bench_adversary", record, table)


if __name__ == "__main__":
    main()
