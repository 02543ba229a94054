"""The sections of docs/results.md on the privacy work against adaptive attackers (device-side
steps, their ablation): `records` in, Markdown lines out, as in results_sections.py."""

from __future__ import annotations

from results_format import heading, pct, provenance, table


def sec_speaker_cues(records: dict) -> list[str]:
    rec = records.get("bench_speaker_cues")
    out = [heading("bench_speaker_cues"), ""] + provenance("bench_speaker_cues", rec)
    if rec:
        rows = []
        for s in rec["settings"]:
            parts = ([f"per-band normalisation, running mean of {s['frames']} frames"]
                     if s["frames"] else [])
            parts += [f"liftering, {s['keep']} cepstral coefficients"] if s.get("keep") else []
            name = " + ".join(parts) or "none (the front-end's log-mel)"
            rows.append([name, pct(s["speaker_id_means"]), pct(s["speaker_id_statistics"])])
        out += [f"Speaker identification among {rec['speakers']} speakers "
                f"({rec['train_utterances']} training, {rec['test_utterances']} test utterances; "
                f"chance {pct(rec['chance'])} %):", ""]
        out += table(["device-side step", "from band means", "from band statistics"], rows)
        out += [""]
    out += ["A screening probe, not an attack: a linear classifier (logistic regression) on "
            "per-utterance statistics of what the step outputs, without gates. *Band means* are "
            "what a microphone's response and a speaker's level and average spectrum leave in "
            "every frame; *band statistics* add each band's standard deviation and 10th and "
            "90th percentiles. Liftering keeps each frame's envelope (its first cepstral "
            "coefficients) and drops the fine structure across bands. A step that lowers only "
            "the first column removes the stationary cues and leaves the speaker's spectral "
            "dynamics, which the suite's retrained x-vector attacker reads far better than this "
            "probe.", ""]
    return out


ABLATION_COLUMNS = (("intent_acc", "intent acc"), ("wer_passive", "WER passive"),
                    ("wer_informed", "WER informed"), ("wer_inpainting", "WER inpainting"),
                    ("entity_error_rate", "EntER"), ("eer_ignorant", "EER ignorant"),
                    ("eer_lazy_informed", "EER lazy-inf."), ("eer_semi_informed", "EER semi-inf."),
                    ("speaker_id_acc", "spk-ID acc"), ("gender_acc", "gender acc"))


def variant_name(v: str) -> str:
    if v == "unprotected":
        return "unprotected (all_offload)"
    if v == "gates":
        return "gates only"
    names = {"norm": "norm {} frames", "scale": "scale", "warp": "warp {} %",
             "lifter": "lifter {}", "level": "level removal"}
    parts = []
    for part in v.split("+"):
        kind = part.rstrip("0123456789")
        parts.append(names[kind].format(part[len(kind):]))
    return "gates + " + " + ".join(parts)


def ablation_table(rec: dict, default: str | None) -> list[str]:
    cols = [(k, t) for k, t in ABLATION_COLUMNS
            if any(m.get(k) is not None for m in rec["variants"].values())]
    rows = []
    for v, m in rec["variants"].items():
        label = variant_name(v) + (" (default)" if v == default else "")
        rows.append([f"**{label}**" if v == rec.get("chosen") else label,
                     *(pct(m.get(k)) for k, _ in cols)])
    return table(["variant", *(t for _, t in cols)], rows)


def default_variant(records: dict, rec: dict) -> str | None:
    """The mask's default send steps as the code has them now (`SendConfig`), named as a
    variant (the records may predate it)."""
    from speechmask.device.send import steps_name
    from speechmask.models.config import SendConfig

    return steps_name(SendConfig())


def _ablation_section(records: dict, name: str, describe) -> list[str]:
    """A section of one bench_ablation record: `describe(rec)`'s paragraph, then the table."""
    rec = records.get(name)
    out = [heading(name), ""] + provenance(name, rec)
    if rec:
        out += [describe(rec), ""]
        out += ablation_table(rec, default_variant(records, rec)) + [""]
    return out


def _describe_tuning(rec: dict) -> str:
    return (f"Speaker attackers and utility at {rec['strength']} strength on the built-in "
            "corpus rendered with other voices (`data synth --seed 101`), not the corpus of "
            "any figure reported elsewhere on this page; the mask's gates and the cloud model "
            "are bench_mask's. The rule of [design.md](design.md#choosing-the-default): "
            f"within {rec['max_drop']:g} intent points of the gates alone (the same gates, "
            "the cloud model fine-tuned the same way), the highest semi-informed EER. "
            + (f"Each figure is the mean over seeds {', '.join(map(str, rec['seeds']))} (the "
               "attackers' and the cloud model's fine-tuning; each seed's rows are in the "
               "record), and the rule reads the means. " if len(rec.get("seeds", [0])) > 1
               else "")
            + "Chosen (bold): "
            f"{variant_name(rec['chosen']) if rec.get('chosen') else 'none'}"
            + (f" ({rec['chosen_note']})" if rec.get("chosen_note") else "") + ". The "
            "unprotected row reads with the clean cloud model, trained on the other corpus.")


def _describe_ablation(rec: dict) -> str:
    return (f"Every device-side step on and off over the same trained gates (open "
            f"{pct(rec['variants']['gates'].get('open_fraction'))} %), on the built-in "
            f"corpus, attackers at {rec['strength']} strength; the suite fine-tunes the "
            "cloud model and retrains the informed attackers on each variant's output. "
            "*norm N*: per-band normalisation over N frames; *scale*: the normalisation "
            "also moves each band's mean absolute deviation to a target; *warp P*: random "
            "per-utterance frequency warping up to P %; *level removal*: each frame's mean "
            "over the bands replaced by a constant; *lifter K*: cepstral liftering to K "
            "coefficients (not in the mask). PocketSphinx is left out (the steps send no "
            "audio; bench_attack has the gates' figure), so EntER is the strongest of the "
            "trained content attackers. Intent accuracy is that of the cloud model the suite "
            "fine-tunes on each variant (bench_attack's speechmask row reads with "
            "bench_mask's longer fine-tuning). Bold: the variant the rule would pick on "
            "this corpus; the default was picked on the tuning corpus above.")


def sec_ablation_tuning(records: dict) -> list[str]:
    return _ablation_section(records, "bench_ablation_tuning", _describe_tuning)


def sec_ablation(records: dict) -> list[str]:
    return _ablation_section(records, "bench_ablation", _describe_ablation)


SWEEP_COLUMNS = (("intent_acc", "intent acc"), ("open_fraction", "open"),
                 ("entity_words_sent", "entity words sent"), ("wer_informed", "WER informed"),
                 ("wer_inpainting", "WER inpainting"), ("entity_error_rate", "EntER"),
                 ("eer_lazy_informed", "EER lazy-inf."), ("eer_semi_informed", "EER semi-inf."))
PRIVACY_KEYS = ("wer_informed", "wer_inpainting", "entity_error_rate", "eer_lazy_informed",
                "eer_semi_informed")


#: baselines that are references, not protections a device of the export's budget can run:
#: `on_device` sends nothing because the whole cloud model runs on the device (bench_attack's
#: cost columns: 403 k weights, 10.5 M MACs per second, beyond the 48 KB and 1 % targets)
REFERENCES = ("on_device",)


def dominating(point: dict, baselines: list[dict]) -> list[tuple[str, str]]:
    """(baseline, metric) pairs where the baseline is both more useful (intent accuracy) and
    more private (the metric) than `point`: where the point is not on the frontier."""
    m = point["metrics"]
    out = []
    for b in baselines:
        bm = b["metrics"]
        if bm.get("intent_acc") is None or bm["intent_acc"] <= m["intent_acc"]:
            continue
        out += [(b["name"], k) for k in PRIVACY_KEYS
                if bm.get(k) is not None and m.get(k) is not None and bm[k] > m[k]]
    return out


def sec_sweep(records: dict) -> list[str]:
    rec = records.get("bench_sweep")
    out = [heading("bench_sweep"), ""] + provenance("bench_sweep", rec)
    if not rec:
        return out
    rows = [[p["label"] + (" **(default)**" if p["default"] else "")]
            + [pct(p["metrics"].get(k)) for k, _ in SWEEP_COLUMNS] for p in rec["points"]]
    rows += [[f"*{b['name']}*"] + [pct(b["metrics"].get(k)) for k, _ in SWEEP_COLUMNS]
             for b in rec["baselines"]]
    out += [f"Attackers at {rec['strength']} strength; γ: the KL budget, s: the switch cost "
            "(none: 0), n: the send normalisation's frames, w: the send warp in %. Rates in %; "
            "baselines in italics.", ""]
    out += table(["setting"] + [t for _, t in SWEEP_COLUMNS], rows) + [""]
    out += ["![privacy-utility frontier](../benchmarks/results/bench_sweep.png)", "",
            "*Intent accuracy against each privacy metric; the points of each trained mask "
            "joined, baselines labelled, the default starred.*", ""]
    default = next((p for p in rec["points"] if p["default"]), None)
    if default:
        protections = [b for b in rec["baselines"] if b["name"] not in REFERENCES]
        references = [b["name"] for b in rec["baselines"] if b["name"] in REFERENCES]
        beaten = dominating(default, protections)
        out += [("**On the frontier against every protection**: no baseline is both more "
                 "useful and more private than the default on any metric." if not beaten else
                 "**Not on the frontier everywhere**: " + "; ".join(
                     f"{b} is more useful and more private on {k}" for b, k in beaten) + ".")
                + (f" Left out of this check as references, not protections a device of the "
                   f"export's budget runs: {', '.join(references)} (it sends nothing because "
                   "the whole cloud model runs on the device, beyond the memory and compute "
                   "targets)." if references else ""),
                ""]
    return out


SECTIONS = (sec_speaker_cues, sec_ablation_tuning, sec_ablation, sec_sweep)
