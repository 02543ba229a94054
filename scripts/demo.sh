#!/usr/bin/env bash
# `make demo`: the main job end to end on a small built-in corpus. Re-running resumes.
set -euo pipefail
OUT=${1:-demo_out}
SM=.venv/bin/speechmask
step() { printf '\n== %s\n' "$*"; }

step "1. synthesize a small built-in SLU corpus (12 speakers x 12 utterances)"
$SM data synth --out "$OUT/corpus" --speakers 12 --utterances-per-speaker 12 --seed 0

step "2. corpus statistics, and the firmware's integer front-end against float"
$SM data stats --manifest "$OUT/corpus/manifest.jsonl" --frontend 12 --json "$OUT/stats.json" --force

step "3. log-mel of one utterance per speaker"
$SM data plot --manifest "$OUT/corpus/manifest.jsonl" --per-speaker --out "$OUT/speakers.png" --force

printf '\nDemo outputs are in %s/ (corpus/, stats.json, speakers.png).\n' "$OUT"
