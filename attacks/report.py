"""The suite's outputs: report.json (every number, configs, versions, seeds), report.md (one row
per system), and plots (DET curves, masked examples, privacy-utility curves)."""

from __future__ import annotations

import json
import platform
from importlib import metadata
from pathlib import Path

import numpy as np

from speechmask.audio import atomic_write_text
from speechmask.plotting import save_figure

PACKAGES = ("speechmask", "torch", "numpy", "scikit-learn", "jiwer", "pocketsphinx", "librosa",
            "scipy")
COLUMNS = (("intent_acc", "intent acc"), ("open_fraction", "open"),
           ("entity_words_sent", "entity words sent"), ("carrier_words_sent", "carrier words sent"),
           ("wer_pocketsphinx", "WER PocketSphinx"), ("wer_passive", "WER passive"),
           ("wer_informed", "WER informed"), ("wer_inpainting", "WER inpainting"),
           ("entity_error_rate", "EntER"), ("eer_ignorant", "EER ignorant"),
           ("eer_lazy_informed", "EER lazy-inf."), ("eer_semi_informed", "EER semi-inf."),
           ("speaker_id_acc", "spk-ID acc"), ("gender_acc", "gender acc"))


def versions() -> dict:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def _fmt(v) -> str:
    return "—" if v is None else f"{100 * v:.1f}"


def _count(v: int) -> str:
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if v >= div:
            return f"{v / div:.3g}{unit}"
    return str(v)


def markdown(report: dict) -> str:
    lines = ["# Attack suite report", "",
             f"Manifest `{report['manifest']}`; content attackers and utility on "
             f"`{report['split_field']}` test ({report['content_test_utterances']} utterances); "
             f"speaker attackers on `speaker_split` test ({report['trials']['speakers']} speakers, "
             f"{report['trials']['target']} target / {report['trials']['nontarget']} non-target "
             "trials).", "",
             "Rates in %. WER: lower = more leaked. EntER: entity error rate (share of sensitive "
             "entities the strongest content attacker does not recover). EER: equal error rate of "
             "speaker verification (50 = chance). Cost: on-device, per second of audio "
             "(front-end excluded; weights int8).", ""]
    head = ["system"] + [c[1] for c in COLUMNS] + ["params", "MACs/s", "weights B", "activ. B"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in report["systems"]:
        m, c = row["metrics"], row["cost"]
        cells = [row["name"]] + [_fmt(m.get(k)) for k, _ in COLUMNS] + [
            _count(c["params"]), _count(c["macs_per_second"]), _count(c["weight_bytes"]),
            _count(c["activation_bytes"])]
        lines.append("| " + " | ".join(cells) + " |")
    reference = report.get("unprotected")
    if reference:
        cells = ["*unprotected*"] + [_fmt(reference.get(k)) for k, _ in COLUMNS] + [""] * 4
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", f"Attackers at {report.get('strength', 'quick')} strength; *unprotected*: each "
              "attacker's score on unprotected speech (its strength: what it recovers when "
              "nothing is hidden).",
              "— = does not apply (no audio sent, no log-mel sent, or nothing withheld).",
              "Words sent: the mean share of each word's time-frequency cells sent, for entity "
              "words and for carrier words (the template's own, which carry the intent), word "
              "times by forced alignment of the clean audio (`attacks/words.py`).",
              "`on_device` sends nothing: its attack figures are those of an attacker with no "
              "input (WER 100, EER 50, speaker-ID at chance).", ""]
    return "\n".join(lines)


def write_report(out: Path, report: dict) -> None:
    atomic_write_text(out / "report.json", json.dumps(report, indent=1, default=_json) + "\n")
    atomic_write_text(out / "report.md", markdown(report))


def _json(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(type(o).__name__)


def plot_det(details: dict, out: Path) -> None:
    """DET curves of every system, one panel per speaker attacker, on normal-deviate axes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy.stats import norm

    kinds = ("ignorant", "lazy_informed", "semi_informed")
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.4), layout="constrained", sharey=True)
    ticks = np.array([0.01, 0.02, 0.05, 0.1, 0.2, 0.4, 0.6])
    for ax, kind in zip(axes, kinds):
        for name, d in details.items():
            res = d.get("speaker", {}).get(kind)
            if not res:
                continue
            fpr = np.clip(np.array(res["det"]["fpr"]), 1e-3, 1 - 1e-3)
            fnr = np.clip(np.array(res["det"]["fnr"]), 1e-3, 1 - 1e-3)
            ax.plot(norm.ppf(fpr), norm.ppf(fnr), label=f"{name} (EER {100 * res['eer']:.1f} %)")
        ax.plot(norm.ppf([1e-3, 0.999]), norm.ppf([1e-3, 0.999]), color="grey", lw=0.5, ls=":")
        ax.set_xticks(norm.ppf(ticks), [f"{100 * t:g}" for t in ticks])
        ax.set_yticks(norm.ppf(ticks), [f"{100 * t:g}" for t in ticks])
        ax.set_xlim(norm.ppf(0.005), norm.ppf(0.7))
        ax.set_ylim(norm.ppf(0.005), norm.ppf(0.7))
        ax.set_title(f"{kind.replace('_', '-')} attacker", fontsize=10)
        ax.set_xlabel("false acceptance (%)")
        ax.legend(fontsize=7, loc="upper right")
    axes[0].set_ylabel("false rejection (%)")
    save_figure(fig, out)
    plt.close(fig)


def plot_examples(examples: dict, floor: float, out: Path) -> None:
    """One test utterance: clean log-mel and what each log-mel system sends (and the inpainter's
    reconstruction where there is one)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = []
    first = next(iter(examples.values()))
    panels.append((f"clean ({first['id']})", first["clean"]))
    for name, ex in examples.items():
        if ex.get("log_mel"):
            panels.append((f"{name}: sent", ex["sent"]))
        if "inpainted" in ex:
            panels.append((f"{name}: inpainting attacker's reconstruction", ex["inpainted"]))
    fig, axes = plt.subplots(len(panels), 1, figsize=(9, 1.6 * len(panels)), sharex=True,
                             layout="constrained")
    vmax = float(first["clean"].max())
    for ax, (title, f) in zip(np.atleast_1d(axes), panels):
        ax.imshow(f.T, origin="lower", aspect="auto", cmap="magma", vmin=floor, vmax=vmax)
        ax.set_title(title, fontsize=8)
        ax.set_yticks([])
    np.atleast_1d(axes)[-1].set_xlabel("frame (10 ms)")
    save_figure(fig, out)
    plt.close(fig)
