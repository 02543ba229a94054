"""The sections of docs/results.md, one function per benchmark: `records` (`{name: record}`) in,
Markdown lines out. Numbers come only from the records; the prose explains metrics and protocol."""

from __future__ import annotations

from pathlib import Path

from results_format import (ATTACK_COLUMNS, COMMANDS, METRIC_NAMES, PATTERN_NAMES, SILENCE_S,
                            TARGETS, count, gain, heading, kib, machine, num, pct, points,
                            provenance, ratio, systems, table, verdict)


def sec_synth(records: dict) -> list[str]:
    rec = records.get("bench_synth")
    out = [heading("bench_synth"), ""] + provenance("bench_synth", rec)
    if rec:
        target = rec.get("target_s")
        rows = [["corpus", f"{rec['utterances']:,} utterances ({rec['speakers']} speakers), "
                           f"engines {', '.join(rec.get('engines', []))}; "
                           f"{rec['audio_hours'] * 60:.1f} min of audio", ""],
                [f"median time, {rec['jobs']} jobs ({rec['repeats']} repeats)",
                 f"{rec['median_s']:.1f} s", f"< {target:g} s: {verdict(rec['median_s'] < target)}"
                 if target is not None else ""],
                ["throughput", f"{rec['utterances_per_s']:.1f} utterances/s, "
                               f"{rec['realtime_factor']:.0f}x real time", ""]]
        if "baseline_1_job_median_s" in rec:
            rows.append(["median time, 1 job (baseline, same run)",
                         f"{rec['baseline_1_job_median_s']:.1f} s (speed-up of {rec['jobs']} jobs: "
                         f"{rec['speedup_vs_1_job']:.2f}x)", ""])
        out += table(["", "measured", "target"], rows) + [""]
    out += ["The corpus is rendered from scratch into a temporary folder on every repeat (seed 0, "
            "real TTS voices: espeak-ng and, when installed, flite), so the time covers "
            "synthesis, voice effects, room noise and the manifest. The 1-job run in the same "
            "process is the baseline for the parallel speed-up.", ""]
    return out


def sec_frontend(records: dict) -> list[str]:
    rec = records.get("bench_frontend")
    out = [heading("bench_frontend"), ""]
    out += provenance("bench_frontend", rec)
    if rec:
        target = rec.get("snr_target_db")
        ok = target is None or rec["snr_db_min"] >= target
        ms = rec["ms_per_audio_second"]
        rows = [["utterances", f"{rec['utterances']} ({rec['audio_s']:.1f} s of audio)", ""],
                ["int16 vs float log-mel, SNR",
                 f"median {rec['snr_db_median']:.1f} dB, min {rec['snr_db_min']:.1f} dB",
                 f">= {target:g} dB: {verdict(ok)}" if target is not None else ""],
                ["integer reference, numpy, 1 thread",
                 f"{ms['int_numpy']:.2f} ms per second of audio", ""],
                ["float64, numpy, 1 thread", f"{ms['float_numpy']:.2f} ms per second of audio", ""],
                ["float32, torch CPU, 1 thread", f"{ms['float_torch']:.2f} ms per second of audio",
                 ""]]
        out += table(["", "measured", "target"], rows) + [""]
    out += ["SNR is `10 log10(var(float) / mean((float - int)^2))` per utterance: the variance, "
            "not the power, so the features' large negative offset does not flatter it. The "
            "integer reference emulates the firmware's int32/int64 arithmetic in vectorised numpy, "
            "which is why it is the slowest of the three: its job is to be exact. The firmware's "
            "own cost is for the firmware to measure. Speeds are medians over the repeats, after "
            "one warm-up.", ""]
    return out


def _mask_rows(rec: dict) -> list[list[str]]:
    rows = [["cloud model, clean input", f"intent accuracy {rec['clean_acc']:.3f} "
                                         f"({rec['test_utterances']} test utterances)",
             "(reference)"]]
    for run in rec["runs"]:
        seg = f"{run['segment_ms']:g} ms"
        drop = run["drop_points"]
        rows += [[f"{seg}: cloud model, masked input, before fine-tuning",
                  f"{run['masked_acc_clean_model']:.3f}", ""],
                 [f"{seg}: fine-tuned cloud model, masked input",
                  f"**{run['masked_acc_finetuned']:.3f}** ({gain(drop)})",
                  f"within {TARGETS['mask_drop_points']:g} points: "
                  f"{verdict(drop <= TARGETS['mask_drop_points'])}"],
                 [f"{seg}: segments sent (open fraction)", f"**{run['open_fraction']:.3f}**",
                  f"<= {TARGETS['mask_open_fraction']:g}: "
                  f"{verdict(run['open_fraction'] <= TARGETS['mask_open_fraction'])}"],
                 [f"{seg}: speech segments sent (energy VAD)",
                  f"{run['open_fraction_speech']:.3f}", ""],
                 [f"{seg}: mask training, fine-tuning", f"{run['mask_train_s']:.0f} s, "
                                                        f"{run['finetune_s']:.0f} s", ""]]
    if "mask_200_clips_s" in rec:
        t = rec["mask_200_clips_s"]
        rows.append(["mask training on 200 clips", f"{t:.0f} s",
                     f"<= {TARGETS['mask_200_clips_s']:g} s on 2 cores: "
                     f"{verdict(t <= TARGETS['mask_200_clips_s'])}"])
    rows.append(["cloud model training (clean)", f"{rec['slu_train_s']:.0f} s", ""])
    return rows


def sec_mask(records: dict) -> list[str]:
    rec = records.get("bench_mask")
    out = [heading("bench_mask"), ""] + provenance("bench_mask", rec)
    if rec:
        out += [f"Built-in corpus of {rec['utterances']:,} utterances; mask `{rec['arch']}`, "
                f"gamma {rec['gamma']:g}, hard-concrete beta {rec['temperature']:.3g}, split "
                f"field `{rec['split_field']}`; accuracies on its test part.", ""]
        out += table(["", "measured", "target"], _mask_rows(rec)) + [""]
        if rec.get("note"):  # what the benchmark's reader should know about this run
            out += [f"*Note on this run: {rec['note']}*", ""]
    held = records.get("bench_mask_speaker_split")
    out += ["**Held-out speakers.** The same pipeline with `--split-field speaker_split` (train, "
            "dev and test speakers disjoint):", ""]
    if held is None:
        out += provenance("bench_mask_speaker_split", None)
    else:
        run = held["runs"][0]
        out += [f"clean {held['clean_acc']:.3f}, masked before fine-tuning "
                f"{run['masked_acc_clean_model']:.3f}, fine-tuned **{run['masked_acc_finetuned']:.3f}** "
                f"({gain(run['drop_points'])}; within {TARGETS['mask_drop_points']:g}: "
                f"{verdict(run['drop_points'] <= TARGETS['mask_drop_points'])}), open fraction "
                f"**{run['open_fraction']:.3f}** (speech {run['open_fraction_speech']:.3f}; "
                f"<= {TARGETS['mask_open_fraction']:g}: "
                f"{verdict(run['open_fraction'] <= TARGETS['mask_open_fraction'])}), on "
                f"{held['test_utterances']} test utterances of unseen voices.", "",
                f"Command: `{held.get('command', COMMANDS['bench_mask_speaker_split'])}`; "
                f"machine: {machine(held)}; run {held.get('date', 'at an unrecorded date')}.", ""]
    out += ["**How to read it.** The cloud model is trained on clean features; the mask is trained "
            "against it (fewest open segments with the KL divergence of the cloud model's output "
            "within gamma); the cloud model is then fine-tuned on the mask's binary output, as "
            "SILENCE does, and scored on the test part. The speech share counts segments within "
            "30 dB of the utterance's loudest: when it is close to the overall open fraction, the "
            "mask sends silence about as often as speech.", "",
            "**Honest reading: the mask is, in effect, a regular alternation.** Compare the trained "
            "mask's row with the regular pattern at its segment length in bench_patterns below: "
            "when the two score alike, the audio path adds little, and the mask halves what it "
            "sends by sending every other segment. This is the cheapest way this cloud model "
            "offers to meet the KL budget. Speech interrupted ten-odd times a second stays largely "
            "intelligible to people (Miller and Licklider, 1950), and an attacker may fill the "
            "gaps: bench_attack measures how much.", ""]
    pat = records.get("bench_patterns")
    if rec and pat:
        trained = [p for p in pat["patterns"] if "segment_ms" not in p]
        seg = rec["runs"][0]["segment_ms"]
        comb = [p for p in pat["patterns"] if p.get("pattern") == "comb"
                and p.get("segment_ms") == seg and p.get("keep") == 0.5]
        if trained and comb:
            t, c = trained[0], comb[0]
            out += [f"In the current records: trained mask KL {t['kl']:.3f}, accuracy "
                    f"{t['intent_acc']:.3f} at {t['open_fraction']:.3f} open; regular "
                    f"alternation of {seg:g} ms segments KL {c['kl']:.3f}, accuracy "
                    f"{c['intent_acc']:.3f} at {c['open_fraction']:.3f} open (bench_patterns, "
                    f"{pat['part']} split).", ""]
    out += ["![mask over a test utterance](mask_example.png)", "",
            "*`speechmask mask --model mask.pt spk001/spk001_0033.wav --plot mask.png`: shaded "
            "segments are withheld.*", ""]
    return out


def sec_patterns(records: dict) -> list[str]:
    rec = records.get("bench_patterns")
    out = [heading("bench_patterns"), ""]
    out += provenance("bench_patterns", rec)
    if rec:
        fixed = [p for p in rec["patterns"] if "segment_ms" in p]
        segs = sorted({p["segment_ms"] for p in fixed})
        out += [f"Clean cloud model (no fine-tuning) on the `{rec['part']}` part, "
                f"{rec['utterances']} utterances; clean accuracy {rec['clean_acc']:.3f}. Each cell: "
                "KL (nats) / intent accuracy, and the share of segments actually kept.", ""]
        for keep in sorted({p["keep"] for p in fixed}):
            rows = []
            for kind in ("random", "energy", "comb"):
                cells = {p["segment_ms"]: p for p in fixed if p["pattern"] == kind
                         and p["keep"] == keep}
                if not cells:
                    continue
                rows.append([PATTERN_NAMES.get(kind, kind)] + [
                    f"{cells[s]['kl']:.2f} / {cells[s]['intent_acc']:.2f} "
                    f"(open {cells[s]['open_fraction']:.2f})" if s in cells else "" for s in segs])
            out += [f"Keep {keep:g} of the segments:", ""]
            out += table(["pattern"] + [f"{s:g} ms" for s in segs], rows) + [""]
        trained = [p for p in rec["patterns"] if "segment_ms" not in p]
        if trained:
            out += table(["trained mask", "open", "KL", "accuracy"],
                         [[f"`{Path(p['pattern']).name}`", f"{p['open_fraction']:.3f}",
                           f"{p['kl']:.3f}", f"{p['intent_acc']:.3f}"] for p in trained]) + [""]
    out += ["Patterns: *random* keeps each segment with the given probability; *loudest segments* "
            "keeps the loudest share of each utterance; *regular* keeps 1 of 2 (or 2 of 3). "
            "This is the evidence behind the mask's defaults: where a regular pattern costs far "
            "less KL than a random one at the same share, what the cloud model can do without "
            "depends on what was already withheld, so the mask must see its own past decisions "
            "(gate feedback). The cloud model's time stride and its training-time segment drops "
            "set which segment length it bridges best.", ""]
    return out


def sec_adversary(records: dict) -> list[str]:
    rec = records.get("bench_adversary")
    out = [heading("bench_adversary"), ""]
    out += provenance("bench_adversary", rec)
    keys = ("intent_acc", "open_fraction", "wer_passive", "wer_informed", "entity_error_rate",
            "eer_ignorant", "eer_lazy_informed", "eer_semi_informed", "speaker_id_acc")
    if rec:
        base = next((s for s in rec["settings"] if s["setting"] == "none"), None)
        rows = []
        for s in rec["settings"]:
            weight = s.get("speaker_adversary", s.get("asr_adversary"))
            label = s["setting"] + ("" if weight is None else f" ({weight:g})")
            if s["setting"] == "none":
                label += " (default)"
            delta = (points(100 * (s["intent_acc"] - base["intent_acc"]))
                     if base and s is not base else "")
            rows.append([label] + [pct(s.get(k)) for k in keys] + [delta, f"{s['seconds']:.0f}"])
        out += ["Rates in %; the last columns are the intent accuracy against the no-adversary "
                "row, in points, and the setting's wall time in seconds.", ""]
        out += table(["adversary (weight)"] + [dict(ATTACK_COLUMNS)[k] for k in keys]
                     + ["intent vs none", "s"], rows) + [""]
    out += ["For each setting a default mask is trained against the clean cloud model (with the "
            "adversary's reversed gradient at the given weight), the cloud model is fine-tuned on "
            "it, and the attack suite's passive and informed ASR and its three speaker attackers "
            "score it. An adversary is worth its cost only if it moves the retrained attackers "
            "(informed WER, semi-informed EER) by more than it costs in intent accuracy; the "
            "default stays at no adversary for as long as the table says neither does. A gate "
            "that can only withhold whole segments has little room to hide speaker cues, which "
            "are in every frame.", ""]
    return out


def sec_attack(records: dict) -> list[str]:
    rec = records.get("bench_attack")
    out = [heading("bench_attack"), ""] + provenance("bench_attack", rec)
    if rec:
        trials = rec.get("trials")
        scope = []
        if "content_test_utterances" in rec:
            scope.append(f"content and utility on the `{rec.get('split_field', 'split')}` test "
                         f"part ({rec['content_test_utterances']} utterances)")
        if trials:
            scope.append(f"speaker trials on {trials['speakers']} held-out speakers "
                         f"({trials['target']} target / {trials['nontarget']} non-target)")
        fresh = ("Default settings, fresh attacker cache" if not rec.get("cache_reused_from")
                 else "Default settings; attackers and baselines trained on the same data with "
                      f"the same settings reused from the cache of `{rec['cache_reused_from']}` "
                      "(the same weights, so the same figures; the time below covers only what "
                      "was trained anew)")
        out += [(fresh + "; " + "; ".join(scope) + ". " if scope else fresh + ". ")
                + "Rates in %; — where a metric does not apply. Cost: on-device, per second of "
                  "audio, front-end excluded, weights int8.", ""]
        out += _attack_table(rec)
        secs = rec.get("per_system_seconds", {})
        timed = [f"{n} {secs[n] / 60:.1f} min" for n in systems(rec) if secs.get(n) is not None]
        target = rec.get("target_seconds")
        out += [f"**Time: whole suite {rec['seconds'] / 60:.1f} min** on "
                f"{rec.get('machine', {}).get('cores', '?')} cores"
                + (f" (target <= {target / 60:g} min: {verdict(rec['seconds'] <= target)})"
                   if target else "")
                + (f"; per system: {', '.join(timed)}."
                   if timed else "."), ""]
        out += _attack_reading(rec)
    out += ["**Protocol.** Content attackers fit on the train part and are scored on the test part "
            "of the split the cloud model was trained on. *PocketSphinx* (passive, real ASR) "
            "decodes the protected audio with its acoustic model and a bigram of the training "
            "transcripts; *passive* is a CTC ASR trained on clean speech, decoded by a beam "
            "search with the same bigram; *informed* fine-tunes it "
            "on what the system sends; *inpainting* reconstructs the withheld positions and keeps "
            "the better reading of the informed and the clean ASR. WER via jiwer; *EntER* is the "
            "share of the manifest's sensitive entities the strongest content attacker does not "
            "recover word for word. Speaker attackers follow the VoicePrivacy protocol on the "
            "speaker-disjoint split (x-vector embedder; *ignorant*: clean enrollment, protected "
            "trials; *lazy-informed*: both protected; *semi-informed*: embedder fine-tuned on "
            "protected data); EER 50 is chance. Utility is the intent accuracy of the cloud model "
            "fine-tuned on the system's output. `on_device` sends nothing: its attack figures are "
            "those of an attacker with no input. The learned baselines are compact "
            "re-implementations of the papers' ideas, sized to train in minutes, not "
            "reproductions of their networks; every attacker and baseline starts from weights "
            "drawn from its own seed, so a rerun repeats.", ""]
    return out


def _attack_table(rec: dict) -> list[str]:
    """One row per system of a bench_attack record, every metric and its cost, then the
    attackers' unprotected strength where the record has it."""
    rows = []
    for name in systems(rec):
        m, c = rec["systems"][name], rec.get("costs", {}).get(name, {})
        label = f"**{name}**" if name == "speechmask" else name
        cells = [pct(m.get(k)) for k, _ in ATTACK_COLUMNS]
        if name == "speechmask":
            cells[0] = f"**{cells[0]}**"
        rows.append([label] + cells + [count(c.get("params")), count(c.get("macs_per_second")),
                                       count(c.get("weight_bytes")),
                                       count(c.get("activation_bytes"))])
    ref = rec.get("unprotected")
    if ref and "all_offload" not in rec["systems"]:
        rows.append(["*unprotected*"] + [pct(ref.get(k)) for k, _ in ATTACK_COLUMNS] + [""] * 4)
    return table(["system"] + [h for _, h in ATTACK_COLUMNS]
                 + ["params", "MACs/s", "weights B", "activ. B"], rows) + [""]


def sec_attack_full(records: dict) -> list[str]:
    """The default mask and the unprotected row with every attacker trained to convergence,
    beside the quick run's figures for the same systems."""
    rec, quick = records.get("bench_attack_full"), records.get("bench_attack")
    out = [heading("bench_attack_full"), "",
           "`--strength full`: every attacker that trains (the clean and informed ASRs, the "
           "inpainter, the clean and semi-informed x-vectors) trains until its dev loss stops "
           "improving and keeps its best weights, the ASRs wider; the mask, its cloud model and "
           "the protocol are those of the quick run above. Only the unprotected row runs beside "
           "the mask (`--baselines all_offload`): the baselines at full strength take many hours "
           "on 2 cores.", ""]
    return out + _full_run("bench_attack_full", rec, quick)


def _full_run(name: str, rec: dict | None, quick: dict | None) -> list[str]:
    """A full-strength record (`name`): its table, time and #15's verdicts, then quick -> full
    for the systems the quick record `quick` has too."""
    out = provenance(name, rec)
    if not rec:
        return out
    out += _attack_table(rec)
    out += [f"**Time: {rec['seconds'] / 60:.0f} min** on "
            f"{rec.get('machine', {}).get('cores', '?')} cores"
            + (f" (attackers reused from the cache of `{rec['cache_reused_from']}`: the time "
               "covers only what was not in it)" if rec.get("cache_reused_from") else "")
            + ".", ""]
    out += _full_verdicts(rec)
    if quick:
        rows = []
        for system in ("all_offload", "speechmask"):
            full_m, quick_m = rec["systems"].get(system), quick["systems"].get(system)
            if full_m and quick_m:
                rows.append([system] + [f"{pct(quick_m.get(k))} → {pct(full_m.get(k))}"
                                      for k, _ in ATTACK_COLUMNS])
        if rows:
            out += ["Quick → full strength, the same systems:", ""]
            out += table(["system"] + [h for _, h in ATTACK_COLUMNS], rows) + [""]
    return out


def _full_verdicts(rec: dict) -> list[str]:
    """#15's targets against the full-strength figures, and the attackers' strength."""
    ours, ref = rec["systems"].get("speechmask"), rec["systems"].get("all_offload")
    if not (ours and ref):
        return []
    t = TARGETS

    def at_least(key: str, target: float) -> str:
        v = ours.get(key)
        return f"{pct(v)} % (>= {pct(target, 0)}: {verdict(v is not None and v >= target)})"

    def at_most(v: float | None, target: float) -> str:
        return f"(<= {pct(target, 0)}: {verdict(v is not None and v <= target)}"

    drop = 100 * (ours["intent_acc"] - ref["intent_acc"])
    return [
        "Against #15's targets, at full strength:", "",
        f"- **Attackers' strength on unprotected speech:** trained ASR WER "
        f"{pct(ref.get('wer_passive'))} % {at_most(ref.get('wer_passive'), t['attacker_clean_wer'])}"
        f"; PocketSphinx with the domain bigram {pct(ref.get('wer_pocketsphinx'))} %), x-vector "
        f"EER {pct(ref.get('eer_ignorant'))} % "
        f"{at_most(ref.get('eer_ignorant'), t['attacker_clean_eer'])}).",
        f"- **The default mask:** informed WER {at_least('wer_informed', t['adaptive_wer'])}, "
        f"inpainting {at_least('wer_inpainting', t['adaptive_wer'])}, EntER "
        f"{at_least('entity_error_rate', t['adaptive_enter'])}, semi-informed EER "
        f"{at_least('eer_semi_informed', t['adaptive_eer_semi'])}, lazy-informed EER "
        f"{at_least('eer_lazy_informed', t['adaptive_eer_lazy'])}; intent {drop:+.1f} points "
        f"against all_offload (within {t['attack_intent_points']:g}: "
        f"{verdict(drop >= -t['attack_intent_points'])}).", ""]


def sec_heldout(records: dict) -> list[str]:
    """The mask pipeline and the attack suite on the held-out split: test speakers and sentence
    templates that neither the cloud model, the mask nor the attackers saw."""
    mask, attack = records.get("bench_mask_heldout"), records.get("bench_attack_heldout")
    out = [heading("bench_attack_heldout"), "",
           "The same pipeline on `speechmask data heldout`'s split of the built-in corpus: the "
           "test part has speakers *and* sentence templates that no training utterance has, so "
           "the cloud model, the mask and every attacker meet other voices and other sentences "
           "than they learned from.", ""]
    out += provenance("bench_mask_heldout", mask)
    if mask:
        run = mask["runs"][0]
        out += [f"Cloud model clean {mask['clean_acc']:.3f}, masked before fine-tuning "
                f"{run['masked_acc_clean_model']:.3f}, fine-tuned **{run['masked_acc_finetuned']:.3f}** "
                f"({gain(run['drop_points'])}), open fraction **{run['open_fraction']:.3f}** "
                f"(speech {run['open_fraction_speech']:.3f}), on {mask['test_utterances']} test "
                "utterances.", ""]
    out += provenance("bench_attack_heldout", attack)
    if attack:
        out += _attack_table(attack)
        out += _heldout_reading(attack, records.get("bench_mask"))
    out += ["### At full strength", "",
            "The mask and the unprotected row on the same split with every attacker trained to "
            "convergence, as in the section above it. The held-out split gives the training "
            "speakers no 'dev' utterances, so the speaker attackers stop on every 8th utterance "
            "of each training speaker instead. Two verdicts below say little on this split: the "
            "intent one (the cloud model itself is near its floor on unseen sentences, as said "
            "above) and the trained ASR's strength (item 1's bound is for the sentences its "
            "bigram was built from; here every test sentence is new to it).", ""]
    return out + _full_run("bench_attack_heldout_full", records.get("bench_attack_heldout_full"),
                           attack)


def _heldout_reading(rec: dict, seen: dict | None) -> list[str]:
    """What the held-out figures can and cannot say, from the records' own numbers (`seen`:
    bench_mask's, the same pipeline on seen sentences)."""
    s = rec["systems"]
    ours, ref, rnd = s.get("speechmask"), s.get("all_offload"), s.get("random")
    if not (ours and ref):
        return []
    out = ["What these numbers say:", "",
           f"- **Utility says little on this split.** The cloud model itself reads "
           f"{pct(ref['intent_acc'])} % of the unseen sentences"
           + (f" (of seen sentences, bench_mask: {pct(seen['clean_acc'])} %)" if seen else "")
           + ": trained from scratch on a few templates per intent, it learns the templates, "
           "not the words that carry the intent, so every system's intent accuracy here is near "
           "that floor. The attackers do not read the cloud model: their figures stand."]
    line = (f"- **Content.** Informed WER {pct(ours['wer_informed'])} % and inpainting "
            f"{pct(ours['wer_inpainting'])} % against {pct(ref['wer_informed'])} % unprotected "
            f"(the attackers meet unseen sentences too); EntER {pct(ours['entity_error_rate'])} %.")
    if rnd and rnd.get("wer_informed") is not None:
        more = rnd["wer_informed"] > ours["wer_informed"]
        line += (f" Random gates at the same open fraction {'hide more' if more else 'hide less'}"
                 f" (informed WER {pct(rnd['wer_informed'])} %)"
                 + (": regular short gaps are the easier ones to bridge." if more else "."))
    out.append(line)
    trials = rec.get("trials", {})
    out.append(f"- **Speaker.** Semi-informed EER {pct(ours['eer_semi_informed'])} % against "
               f"{pct(ref['eer_semi_informed'])} % unprotected, lazy-informed "
               f"{pct(ours['eer_lazy_informed'])} %, on {trials.get('target', '?')} target and "
               f"{trials.get('nontarget', '?')} non-target trials among "
               f"{trials.get('speakers', '?')} speakers: one target trial moves an EER by about "
               f"{100 / max(1, trials.get('target', 1)):.0f} points.")
    return out + [""]


def _attack_reading(rec: dict) -> list[str]:
    s = rec["systems"]
    ours, ref = s.get("speechmask"), s.get("all_offload")
    out = ["What these numbers say:", ""]
    if ref:
        out.append(f"- **Attackers on unprotected speech (all_offload, the reference).** Speaker: "
                   f"EER {pct(ref.get('eer_ignorant'))} %, speaker ID {pct(ref.get('speaker_id_acc'))} %, "
                   f"gender {pct(ref.get('gender_acc'))} %. Content: WER "
                   f"{pct(ref.get('wer_pocketsphinx'))} % (PocketSphinx), "
                   f"{pct(ref.get('wer_passive'))} % (trained ASR); the strongest attacker misses "
                   f"{pct(ref.get('entity_error_rate'))} % of the sensitive entities (names and "
                   "numbers are rare in training, and an entity counts only if every word is "
                   "right).")
    if ours and ref:
        d = 100 * (ours["intent_acc"] - ref["intent_acc"])
        passive = [v for v in (ours.get("wer_pocketsphinx"), ours.get("wer_passive"))
                   if v is not None]
        out.append(
            f"- **Our mask against its targets.** Intent accuracy {pct(ours['intent_acc'])} % "
            f"against {pct(ref['intent_acc'])} % for all_offload ({d:+.1f} points; within "
            f"{TARGETS['attack_intent_points']:g}: {verdict(d >= -TARGETS['attack_intent_points'])}); "
            + (f"passive WER {pct(ours.get('wer_pocketsphinx'))} % (PocketSphinx) and "
               if ours.get("wer_pocketsphinx") is not None else
               "no audio sent (PocketSphinx does not apply); passive WER ")
            + f"{pct(ours.get('wer_passive'))} % (clean-trained ASR; >= "
            f"{pct(TARGETS['attack_passive_wer'], 0)}: "
            f"{verdict(bool(passive) and min(passive) >= TARGETS['attack_passive_wer'])}); EntER "
            f"{pct(ours.get('entity_error_rate'))} % (>= {pct(TARGETS['attack_enter'], 0)}: "
            f"{verdict((ours.get('entity_error_rate') or 0) >= TARGETS['attack_enter'])}).")
        out.append(
            f"- **Against attackers who retrain, it protects little.** Informed WER "
            f"{pct(ours.get('wer_informed'))} % and inpainting {pct(ours.get('wer_inpainting'))} %, "
            f"against {pct(ref.get('wer_informed'))} % unprotected; semi-informed speaker EER "
            f"{pct(ours.get('eer_semi_informed'))} % against {pct(ref.get('eer_semi_informed'))} %, "
            f"while the clean-trained speaker attacker is fooled only in part (EER "
            f"{pct(ours.get('eer_ignorant'))} %). A regular alternation of short segments sends "
            "a part of every word, which a retrained attacker learns to read.")
        if ours.get("entity_words_sent") is not None:
            out.append(
                f"- **Which words are sent.** {pct(ours['entity_words_sent'])} % of each entity "
                f"word and {pct(ours.get('carrier_words_sent'))} % of each carrier word (the "
                "template's own, which carry the intent)" + (
                    ": the gates withhold no kind of word more than another."
                    if abs(ours["entity_words_sent"] - (ours.get("carrier_words_sent") or 0))
                    < 0.05 else "."))
    others = [n for n in ("mcadams", "vae") if n in s]
    if others:
        out.append("- **Voice transformation and disentangling** hide the speaker from attackers "
                   "that are not retrained, less so from the semi-informed one: "
                   + "; ".join(f"{n} EER ignorant {pct(s[n].get('eer_ignorant'))} %, "
                               f"semi-informed {pct(s[n].get('eer_semi_informed'))} %"
                               for n in others) + ".")
    if "random" in s and ours:
        out.append(f"- **Random masking** at a similar open fraction ({pct(s['random'].get('open_fraction'))} "
                   f"% sent) keeps {pct(s['random']['intent_acc'])} % intent accuracy, against "
                   f"{pct(ours['intent_acc'])} % for the trained mask.")
    if "ppslu" in s:
        out.append(f"- **PPSLU keeps {pct(s['ppslu']['intent_acc'])} % intent accuracy.** A "
                   "transformer trained from scratch on a corpus this small generalises poorly "
                   "even without adversaries; a forward-CTC warm-up and a small final adversary "
                   "weight keep it above chance. Its representation still leaks: informed WER "
                   f"{pct(s['ppslu'].get('wer_informed'))} %, semi-informed EER "
                   f"{pct(s['ppslu'].get('eer_semi_informed'))} %.")
    return out + [""]


def sec_export(records: dict) -> list[str]:
    rec = records.get("bench_export")
    out = [heading("bench_export"), ""]
    out += provenance("bench_export", rec)
    if rec:
        p = rec["parity"]
        mem_target, cpu_target = rec.get("target_memory_bytes"), rec.get("target_cpu_share")
        compute = (f"{num(rec['macs_per_call'])} MACs per call, " if "macs_per_call" in rec
                   else "") + f"{num(rec['macs_per_second'])} per second of audio"
        per_call = (f"{rec['est_ms_per_call_480mhz']:.3f} ms per call, "
                    if "est_ms_per_call_480mhz" in rec else "")
        rows = [["flash + arena", f"{kib(rec['memory_bytes'])}: {num(rec['flash_bytes'])} B model "
                                  f"+ {num(rec['arena_bytes'])} B arena",
                 f"<= {kib(mem_target)}: {verdict(rec['memory_bytes'] <= mem_target)}"
                 if mem_target else ""],
                ["compute", compute, ""],
                ["time at 480 MHz (estimate)",
                 f"{per_call}{rec['est_ms_per_second_480mhz']:.2f} ms per second of audio = "
                 f"{pct(rec['est_cpu_share'], 2)} % of the core",
                 f"<= {pct(cpu_target, 0)} %: {verdict(rec['est_cpu_share'] <= cpu_target)} "
                 "(estimate)" if cpu_target else ""],
                ["LiteRT vs TFLite Micro", f"at most {p['litert_vs_tflm_max_lsb']} LSB over every "
                                           f"output, {num(p['calls_checked_in_both_runtimes'])} "
                                           "calls",
                 f"<= {TARGETS['export_max_lsb']} LSB: "
                 f"{verdict(p['litert_vs_tflm_max_lsb'] <= TARGETS['export_max_lsb'])}"],
                ["int8 gates == float gates, same inputs",
                 f"{pct(p['gate_agreement'], 2)} % of {num(p['segments'])} test segments",
                 f">= {pct(TARGETS['export_gate_agreement'], 0)} %: "
                 f"{verdict(p['gate_agreement'] >= TARGETS['export_gate_agreement'])}"],
                ["closed loop (each model feeds back its own gates)",
                 f"{pct(p['closed_loop_gate_agreement'], 2)} % agree; open fraction float "
                 f"{pct(p['open_fraction_float'])} %, int8 {pct(p['open_fraction_int8'])} %", ""],
                ["operators", ", ".join(rec["ops"]), "all in TFLite Micro"],
                ["ONNX", f"float vs PyTorch {p['onnx_float_max_abs']:.2g}; QDQ int8 vs float "
                         f"{p['onnx_int8_vs_float_max_abs']:.2g} (logit)", ""]]
        if "analytic" in rec:
            a = rec["analytic"]
            rows.insert(2, ["analytic count (int8 weights + activations + histories)",
                            f"{num(a['memory_bytes'])} B ({num(a['weight_bytes'])} B weights, "
                            f"{num(a['params'])} parameters)", ""])
        rows.append(["export command, wall time", f"{rec['export_seconds']:.0f} s", ""])
        out += table(["", "measured", "target"], rows) + [""]
        out += ["**What \"agree\" means.** Each int8 call is given the same inputs as the float "
                "call (frames, histories, fed-back gates) and its gate is compared with the float "
                "gate. In the device's own closed loop a decision that flips on the threshold "
                "shifts the phase of the mask's alternation for the rest of its utterance, so "
                "closed-loop agreement is lower while the pattern and the open fraction stay; what "
                "that does to utility and privacy is the int8 suite below.", ""]
        out += _baselines(rec) + _int8_suite(rec)
    out += ["**Time estimate**, not a measurement: MACs and element-wise outputs counted from the "
            "int8 graph at an assumed cost per MAC, per element and per operator call "
            "(`firmware_export/graph_cost.py`; the report states the method). The firmware will "
            "measure it.", ""]
    return out


def _baselines(rec: dict) -> list[str]:
    if not rec.get("baselines"):
        return []
    a = rec.get("analytic")
    ours_mem = (f"{num(a['memory_bytes'])} analytic ({num(a['weight_bytes'])} weights); "
                if a else "") + f"{num(rec['memory_bytes'])} measured"
    rows = [["speechmask", num(rec["macs_per_second"]), ours_mem, "1", "1", "1", "", ""]]
    for b in rec["baselines"]:
        rows.append([f"{b['name']} ({b.get('method', 'analytic')})", num(b["macs_per_second"]),
                     num(b["memory_bytes"]), ratio(b["compute_ratio"]), ratio(b["memory_ratio"]),
                     ratio(b.get("weight_ratio")), ratio(b.get("memory_ratio_offline")),
                     ratio(b.get("memory_ratio_vs_measured"))])
    out = ["**Side by side with the attack suite's disentangling baselines** (their device parts "
           "counted analytically with forward hooks: MACs, int8 weights and peak int8 "
           "activations of only the layers the device runs; memory in bytes):", ""]
    out += table(["device part", "MACs / s", "memory", "compute: baseline / ours",
                  "memory: baseline / ours, like for like", "weights only",
                  "offline, whole 4 s clip", "vs our measured flash + arena"], rows) + [""]
    vae = next((b for b in rec["baselines"] if b["name"] == "vae"), None)
    if vae:
        ct, mt = TARGETS["export_compute_ratio"], TARGETS["export_memory_ratio"]
        out += [f"SILENCE's anchors against a disentangling encoder (here the VAE): at least "
                f"{ct:g}x less compute (ours: {ratio(vae['compute_ratio'])}, "
                f"{verdict(vae['compute_ratio'] >= ct)}) and {mt:g}x less memory (like for like: "
                f"{ratio(vae['memory_ratio'])}, {verdict(vae['memory_ratio'] >= mt)}; weights "
                f"only {ratio(vae.get('weight_ratio'))}, offline on a whole clip "
                f"{ratio(vae.get('memory_ratio_offline'))}). Like for like means both streamed: "
                "the VAE's encoder is causal, so it is counted as a device would run it, a call "
                "at a time, weights + state + one call's activations; PPSLU's self-attention "
                "reads the whole utterance, so it is counted on a whole clip. The ratio is set "
                "by the baseline's size, and ours is a compact re-implementation, not the "
                "paper's encoder. Against our measured flash + arena the ratios are smaller: "
                "TFLite's flatbuffer and TFLite Micro's bookkeeping are what an analytic count "
                "leaves out.", ""]
    out += [f"For scale, SILENCE reports SILENCE-S at {SILENCE_S['memory_kb']:g} KB and "
            f"{SILENCE_S['ms_per_4s_clip']:g} ms per 4 s clip on an STM32H7; ours is "
            f"{rec['memory_bytes'] / 1000:.1f} KB measured and, by the estimate above, "
            f"{4 * rec['est_ms_per_second_480mhz']:.1f} ms per 4 s clip.", ""]
    return out


def _int8_suite(rec: dict) -> list[str]:
    if "int8_minus_float_points" not in rec:
        return ["**The attack suite with the int8 gates:** not in this record (run without "
                "`--no-suite`).", ""]
    f, q, d = rec["float"], rec["int8"], rec["int8_minus_float_points"]
    limit = TARGETS["export_int8_points"]
    rows = [[METRIC_NAMES.get(k, k), pct(f.get(k)), pct(q.get(k)), points(v),
             "" if v is None else verdict(abs(v) <= limit)] for k, v in d.items()]
    over = [f"{METRIC_NAMES.get(k, k)} ({points(v)})" for k, v in d.items()
            if v is not None and abs(v) > limit]
    out = [f"**The attack suite with the int8 gates** (`speechmask attack --int8`, "
           f"{rec.get('suite_seconds', 0) / 60:.1f} min): the row `speechmask_int8` sends what "
           "the int8 model decides in its own closed loop and is read by the very attackers "
           "trained on the float mask's output, so it differs from `speechmask` only by what the "
           "int8 gates change. Rates in %, difference in points:", ""]
    out += table(["metric", "float", "int8", "int8 - float", f"within {limit:g} point"], rows)
    out += ["", ("Every cell is within the target." if not over else
                 "Outside the target: " + ", ".join(over) + ". The cause is the closed loop, not "
                 "the arithmetic (see \"agree\" above): a few utterances whose alternation "
                 "changes phase send the other half of their frames, and an attacker's WER on "
                 "those few is what moves. Decisions that cannot flip on a rounding (int16 "
                 "activations for the last layer, or a gate rule with a margin, trained as such) "
                 "would close it; that is left open."), ""]
    return out


def sec_firmware(records: dict) -> list[str]:
    rec = records.get("bench_firmware")
    out = [heading("bench_firmware"), ""] + provenance("bench_firmware", rec)
    if rec:
        ips = rec["instructions_per_second_audio"]
        budget = TARGETS["firmware_instructions_per_s"]
        ram, flash = TARGETS["firmware_ram_bytes"], TARGETS["firmware_flash_bytes"]
        rows = [[f"{step}, instructions per second of audio", f"{ips[step] / 1e6:.2f} M", ""]
                for step in rec["steps_measured"]]
        # the firmware issue's budget names front-end, mask and gating; the send steps came
        # later, so the whole job is shown against 1 % of the core on its own row
        core = sum(ips[k] for k in ("frontend", "mask", "gating") if k in ips)
        rows += [["front-end + mask + gating", f"{core / 1e6:.2f} M/s",
                  f"<= {budget / 1e6:.1f} M/s: {verdict(core <= budget)}"],
                 ["the whole job (sm_device_push), send steps included",
                  f"{ips['total'] / 1e6:.2f} M/s = "
                  f"{pct(rec['est_cpu_share_480mhz'], 2)} % of 480 MHz at 1 instruction/cycle "
                  f"(estimate); {rec['est_ms_per_4s_clip']:.1f} ms per 4 s clip (SILENCE-S: "
                  f"{SILENCE_S['ms_per_4s_clip']} ms)",
                  f"<= 1 % of the core: {verdict(ips['total'] <= budget)}"],
                 ["RAM: static + stack high-water", f"{kib(rec['ram_bytes'])} "
                  f"({num(rec['ram_static_bytes'])} + {num(rec['stack_high_water_bytes'])})",
                  f"<= {kib(ram)} (SILENCE-S: {SILENCE_S['memory_kb']} KB): "
                  f"{verdict(rec['ram_bytes'] <= ram)}"],
                 ["flash: code, tables and the generated model", kib(rec["flash_bytes"]),
                  f"<= {kib(flash)}: {verdict(rec['flash_bytes'] <= flash)}"],
                 ]
        if rec.get("steps_not_yet_in_firmware"):
            rows.append(["not yet in the firmware", ", ".join(rec["steps_not_yet_in_firmware"]),
                         ""])
        if "mask_instructions_per_call" in rec:
            rows.append(["mask network, one call", f"{num(rec['mask_instructions_per_call'])} "
                             f"instructions ({rec['mask_calls_measured']} real calls)",
                             "the export's estimate: "
                             f"{rec['export_est_ms_per_second_480mhz']:.2f} ms per second of "
                             "audio" if rec.get("export_est_ms_per_second_480mhz") else ""])
        out += table(["", "measured", "target"], rows) + [""]
        if rec.get("note"):
            out += [f"Note on this run: {rec['note']}.", ""]
        out += [f"Method: {rec['method']}. The stack is painted below the caller's frame before "
                "the measured pass and read back after it; the static RAM and the flash are "
                "the firmware's objects' (`arm-none-eabi-size`: the core and the generated model), without the "
                "self-test's vectors.", ""]
    return out


SECTIONS = (sec_synth, sec_frontend, sec_mask, sec_patterns, sec_adversary, sec_attack,
            sec_attack_full, sec_heldout, sec_export, sec_firmware)
