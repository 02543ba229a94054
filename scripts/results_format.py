"""Constants and formatting shared by scripts/results.py and scripts/results_sections.py: the
command behind each benchmark record, section titles, the targets, and how numbers are written."""

from __future__ import annotations

import textwrap

BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"

# The command that produces each record (shown where the record is missing), in `make bench`'s
# order of dependencies: bench_patterns, bench_attack, bench_export and bench_adversary reuse the
# corpus and models that bench_mask leaves in build/bench_mask.
COMMANDS = {
    "bench_synth": "python benchmarks/bench_synth.py --repeats 3",
    "bench_frontend": "python benchmarks/bench_frontend.py",
    "bench_mask": "python benchmarks/bench_mask.py --work build/bench_mask",
    "bench_mask_speaker_split": "python benchmarks/bench_mask.py --corpus build/bench_mask/corpus "
                                "--work build/bench_mask_speakers --split-field speaker_split",
    "bench_patterns": "python benchmarks/bench_patterns.py --manifest "
                      "build/bench_mask/corpus/manifest.jsonl --slu build/bench_mask/slu.pt "
                      "--mask build/bench_mask/mask_40ms.pt",
    "bench_adversary": "python benchmarks/bench_adversary.py --corpus build/bench_mask/corpus "
                       "--slu build/bench_mask/slu.pt --work build/bench_adversary "
                       "--cache build/bench_attack/cache",
    "bench_attack": "python benchmarks/bench_attack.py --corpus build/bench_mask/corpus "
                    "--runs build/bench_mask --out build/bench_attack",
    "bench_attack_full": "python benchmarks/bench_attack.py --corpus build/bench_mask/corpus "
                         "--runs build/bench_mask --strength full --baselines all_offload",
    "bench_export": "python benchmarks/bench_export.py --corpus build/bench_mask/corpus "
                    "--runs build/bench_mask --out build/bench_export",
    "bench_firmware": "python benchmarks/bench_firmware.py --export build/bench_export/fw "
                      "--out build/bench_firmware",
    "bench_mask_heldout": "speechmask data heldout --manifest build/bench_mask/corpus/manifest.jsonl "
                          "--out build/heldout/manifest.jsonl --force && python "
                          "benchmarks/bench_mask.py --corpus build/heldout --work "
                          "build/bench_mask_heldout --record bench_mask_heldout",
    "bench_attack_heldout": "python benchmarks/bench_attack.py --corpus build/heldout --runs "
                            "build/bench_mask_heldout --out build/bench_attack_heldout --record "
                            "bench_attack_heldout",
    "bench_attack_heldout_full": "python benchmarks/bench_attack.py --corpus build/heldout "
                                 "--runs build/bench_mask_heldout --strength full --baselines "
                                 "all_offload --record bench_attack_heldout_full",
    "bench_speaker_cues": "python benchmarks/bench_speaker_cues.py --manifest "
                          "build/bench_mask/corpus/manifest.jsonl",
    "bench_ablation_tuning": "speechmask data synth --out build/tuning/corpus --seed 101 && "
                             "python benchmarks/bench_ablation.py --manifest "
                             "build/tuning/corpus/manifest.jsonl --slu build/bench_mask/slu.pt "
                             "--mask build/bench_mask/mask_40ms.pt --attacks speaker "
                             "--record bench_ablation_tuning --cache build/tuning/cache "
                             "--seeds 0 1 --variants gates norm32 norm64 norm256 norm32+warp20 "
                             "norm64+warp10 norm64+warp20 norm256+warp10 norm256+warp20 "
                             "norm256+warp30 norm64+scale norm256+scale norm256+scale+warp10 "
                             "norm256+level norm256+warp20+level norm256+warp30+level",
    "bench_sweep": "python benchmarks/bench_sweep.py --corpus build/bench_mask/corpus --runs "
                   "build/bench_mask --reuse-cache build/bench_attack",
    "bench_ablation": "python benchmarks/bench_ablation.py --manifest "
                      "build/bench_mask/corpus/manifest.jsonl --slu build/bench_mask/slu.pt "
                      "--mask build/bench_mask/mask_40ms.pt",
    "bench_federated_runtimes": "python benchmarks/bench_federated.py --runtimes",
    "bench_federated": "python benchmarks/bench_federated.py --manifest "
                       "build/bench_mask/corpus/manifest.jsonl --mask build/bench_mask/mask_40ms.pt "
                       "--slu build/bench_mask/slu.pt --out build/bench_federated",
}

# Section headings, in the order of the page (the README links to their anchors).
TITLES = {
    "bench_synth": "built-in corpus generation",
    "bench_frontend": "integer front-end against float",
    "bench_mask": "the mask pipeline",
    "bench_patterns": "which masking patterns the cloud model tolerates",
    "bench_adversary": "adversary settings of the mask objective",
    "bench_attack": "the attack suite",
    "bench_attack_full": "the attack suite at full strength",
    "bench_attack_heldout": "the held-out split (unseen speakers and sentences)",
    "bench_export": "the int8 model for the microcontroller",
    "bench_firmware": "the firmware on the emulated Cortex-M7",
    "bench_speaker_cues": "speaker cues left by each device-side step (a probe)",
    "bench_ablation_tuning": "choosing the device-side steps (a corpus of other voices)",
    "bench_ablation": "ablation of the device-side steps",
    "bench_sweep": "the privacy-utility frontier",
    "bench_federated": "federated adaptation on masked features",
}

# Targets are specifications (the issues' texts and the SILENCE paper's claims), not
# measurements; where a record carries its own target, the record's value is used instead.
TARGETS = {
    "mask_drop_points": 3.0,          # fine-tuned masked accuracy within 3 points of clean
    "mask_open_fraction": 0.5,        # at most half the segments sent
    "mask_200_clips_s": 120.0,        # mask training on 200 clips, 2 CPU cores
    "attack_intent_points": 3.0,      # our intent accuracy within 3 points of AllOffload
    "attack_passive_wer": 0.70,       # passive attackers' WER at least 70 %
    "attack_enter": 0.70,             # entity error rate at least 70 %
    # #15, against attackers who retrain (judged at full strength), and the attackers' own
    # strength on unprotected speech that its item 1 asks for
    "adaptive_wer": 0.70,             # informed and inpainting WER at least 70 %
    "adaptive_enter": 0.80,           # entity error rate at least 80 %
    "adaptive_eer_semi": 0.25,        # semi-informed speaker EER at least 25 %
    "adaptive_eer_lazy": 0.35,        # lazy-informed speaker EER at least 35 %
    "attacker_clean_wer": 0.28,       # the trained ASR on unprotected speech: WER at most 28 %
    "attacker_clean_eer": 0.02,       # the x-vector on unprotected speech: EER at most 2 %
    "export_max_lsb": 1,              # LiteRT vs TFLite Micro
    "export_gate_agreement": 0.98,    # int8 gates == float gates, same inputs
    "export_compute_ratio": 53.3,     # SILENCE: less compute than a disentangling encoder
    "export_memory_ratio": 134.1,     # SILENCE: less memory than a disentangling encoder
    "export_int8_points": 1.0,        # attack-suite utility/content cells, int8 vs float
    "firmware_instructions_per_s": 4.8e6,  # front-end + mask + gating: 1 % of 480 MHz
    "firmware_ram_bytes": 48 * 1024,  # static + stack
    "firmware_flash_bytes": 64 * 1024,
}
SILENCE_S = {"memory_kb": 394.9, "ms_per_4s_clip": 912}  # as reported by the SILENCE paper

ATTACK_COLUMNS = (("intent_acc", "intent acc"), ("open_fraction", "open"),
                  ("entity_words_sent", "entity words sent"),
                  ("carrier_words_sent", "carrier words sent"),
                  ("wer_pocketsphinx", "WER PocketSphinx"), ("wer_passive", "WER passive"),
                  ("wer_informed", "WER informed"), ("wer_inpainting", "WER inpainting"),
                  ("entity_error_rate", "EntER"), ("eer_ignorant", "EER ignorant"),
                  ("eer_lazy_informed", "EER lazy-inf."), ("eer_semi_informed", "EER semi-inf."),
                  ("speaker_id_acc", "spk-ID acc"), ("gender_acc", "gender acc"))
METRIC_NAMES = dict(ATTACK_COLUMNS) | {"intent_acc": "intent accuracy",
                                       "open_fraction": "open fraction",
                                       "entity_error_rate": "entity error rate (EntER)"}
SYSTEM_ORDER = ("all_offload", "random", "mcadams", "vae", "ppslu", "speechmask",
                "speechmask_int8", "on_device")
HEADLINE_SYSTEMS = ("speechmask", "all_offload", "random", "mcadams", "vae")
HEADLINE_METRICS = (("intent_acc", "intent accuracy"), ("open_fraction", "segments sent"),
                    ("entity_words_sent", "entity words sent (share of each word)"),
                    ("wer_pocketsphinx", "WER, PocketSphinx (passive)"),
                    ("wer_passive", "WER, clean-trained ASR (passive)"),
                    ("wer_informed", "WER, ASR retrained on the output (informed)"),
                    ("entity_error_rate", "entities not recovered (EntER)"),
                    ("eer_ignorant", "speaker EER, ignorant attacker"),
                    ("eer_semi_informed", "speaker EER, retrained attacker (semi-informed)"))
PATTERN_NAMES = {"random": "random", "energy": "loudest segments", "comb": "regular (alternate)"}


# ---------------------------------------------------------------- formatting


def pct(v, digits: int = 1) -> str:
    """A rate in % (`0.933` -> `93.3`); `—` where it does not apply."""
    return "—" if v is None else f"{100 * v:.{digits}f}"


def points(v) -> str:
    """A signed difference in points; `0.0 + v` turns a negative zero into `+0.0`."""
    return "—" if v is None else f"{0.0 + v:+.1f}"


def gain(drop_points: float) -> str:
    """bench_mask's `drop_points` (clean minus fine-tuned) as a signed change: `+1.1 points`."""
    return f"{0.0 - drop_points:+.1f} points"


def num(v) -> str:
    return "—" if v is None else f"{v:,}"


def count(v) -> str:
    """Compact count as the attack report writes it: 5.09k, 484k, 10.2M."""
    if v is None:
        return "—"
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if v >= div:
            return f"{v / div:.3g}{unit}"
    return str(v)


def kib(v) -> str:
    return f"{v:,} B ({v / 1024:.1f} KiB)"


def ratio(v) -> str:
    return "—" if v is None else f"{v:.1f}x"


def verdict(ok: bool) -> str:
    return "met" if ok else "**not met**"


def wrap(line: str, width: int = 100) -> list[str]:
    """A prose line folded at `width` (tables, headings, code and list items' first lines kept
    whole where they cannot be folded safely)."""
    if len(line) <= width or line.startswith(("|", "#", "    ", "<!--", "![", "Command: ")):
        return [line]
    indent = "  " if line.startswith("- ") else ""
    hard = "  " if line.endswith("  ") else ""  # a Markdown line break survives the fold
    lines = textwrap.wrap(line, width, subsequent_indent=indent, break_long_words=False,
                          break_on_hyphens=False)
    return lines[:-1] + [lines[-1] + hard]


def heading(name: str) -> str:
    return f"## {name}: {TITLES[name]}"


def anchor(name: str) -> str:
    """GitHub's anchor of a section's heading: lower case, punctuation but `-` and `_` dropped,
    spaces to `-`."""
    text = heading(name)[3:].lower()
    return "".join(c for c in text if c.isalnum() or c in " -_").replace(" ", "-")


def table(head: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]


def machine(rec: dict) -> str:
    m = rec.get("machine", {})
    load = (f", load {m['load_15min']:.1f} (15-minute average at the end)"
            if "load_15min" in m else "")
    return f"{m.get('cpu', '?')}, {m.get('cores', '?')} cores, Python {m.get('python', '?')}{load}"


def provenance(name: str, rec: dict | None) -> list[str]:
    """The command, machine and date of a record, or the "not yet run" note."""
    if rec is None:
        return [f"**Not yet run.** Produce `benchmarks/results/{name}.json` with", "",
                f"    {COMMANDS[name]}", "", "then run `make results`.", ""]
    return [f"Command: `{rec.get('command', COMMANDS[name])}`  ",
            f"Machine: {machine(rec)}; run {rec.get('date', 'at an unrecorded date')}.", ""]


def systems(rec: dict) -> list[str]:
    names = list(rec.get("systems", {}))
    return [s for s in SYSTEM_ORDER if s in names] + [s for s in names if s not in SYSTEM_ORDER]
