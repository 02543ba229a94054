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


SECTIONS = (sec_speaker_cues,)
