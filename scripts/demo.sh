#!/usr/bin/env bash
# `make demo`: the main job end to end on the built-in corpus (most of its time is the attack suite).
# Re-running resumes the corpus and retrains the models.
set -euo pipefail
OUT=${1:-demo_out}
SM=.venv/bin/speechmask
M="$OUT/corpus/manifest.jsonl"
R="$OUT/runs"
step() { printf '\n== %s\n' "$*"; }

step "1. synthesize the built-in SLU corpus (default size: 30 speakers x 40 utterances, real TTS voices)"
$SM data synth --out "$OUT/corpus" --seed 0

step "2. corpus statistics, and the firmware's integer front-end against float"
$SM data stats --manifest "$M" --frontend 12 --json "$OUT/stats.json" --force

step "3. log-mel of one utterance per speaker"
$SM data plot --manifest "$M" --per-speaker --max 12 --out "$OUT/speakers.png" --force

step "4. train the cloud SLU model (intent classifier) on clean features"
$SM train slu --manifest "$M" --out "$R/slu.pt" --eval-every 260 --quiet --force

step "5. train the mask generator: fewest open segments with KL(cloud clean || masked) <= 0.15"
$SM train mask --manifest "$M" --slu "$R/slu.pt" --out "$R/mask.pt" --eval-every 100 --quiet \
  --force

step "6. fine-tune the cloud model on masked features (as SILENCE does)"
$SM train finetune --manifest "$M" --slu "$R/slu.pt" --mask "$R/mask.pt" --out "$R/slu_masked.pt" \
  --epochs 10 --eval-every 100 --quiet --force

step "7. test-set intent accuracy: clean model on clean input, fine-tuned model on masked input"
$SM evaluate --manifest "$M" --slu "$R/slu.pt"
$SM evaluate --manifest "$M" --slu "$R/slu_masked.pt" --mask "$R/mask.pt"

step "8. mask one test utterance: what the device sends (features), plot of the gates"
WAV=$(.venv/bin/python -c "
import sys; from speechmask.corpus.manifest import read_manifest, resolve_audio
rows = [r for r in read_manifest(sys.argv[1]) if r['split'] == 'test' and r['entities']]
print(resolve_audio(sys.argv[1], rows[0]))" "$M")
echo "(the default mask normalises and warps what it sends, which has no audio counterpart, so it"
echo " sends features only; a mask trained with --send-norm-frames 0 --send-warp 0 can also write"
echo " masked audio with --out masked.wav)"
$SM mask --model "$R/mask.pt" "$WAV" --features "$OUT/masked.npy" \
  --plot "$OUT/mask.png" --stats "$OUT/mask.json" --force

step "9. export the mask for the microcontroller: int8 TFLite, ONNX, C sources, report"
$SM export --mask "$R/mask.pt" --calib "$M" --out "$OUT/fw" --force

step "10. the firmware: its self-test on QEMU's Cortex-M7 (the export's C: front-end, send steps,
   generated int8 model and gating on a test utterance, against the references), and the
   STM32H7 image for a NUCLEO-H743ZI"
$SM firmware build --export "$OUT/fw" --board mps2-an500 --out "$OUT/firmware/mps2-an500" --run \
  --force
$SM firmware build --export "$OUT/fw" --board stm32h7 --out "$OUT/firmware/stm32h7" --force

step "11. the serial tools, with no board: an emulated STM32H7 bootloader on a pseudo-terminal;
   flash the application firmware through it, Go, and stream a test utterance through the real
   firmware on QEMU's Cortex-M7 behind that port, checked against the host reference"
$SM firmware build --export "$OUT/fw" --board stm32h7 --image app --out "$OUT/firmware/app-stm32h7" \
  --force
rm -f "$OUT/board_flash.bin"
BOARD_LOG="$OUT/board_emulate.log"
$SM board emulate --qemu --export "$OUT/fw" --flash-image "$OUT/board_flash.bin" > "$BOARD_LOG" &
BOARD_PID=$!
trap 'kill $BOARD_PID 2>/dev/null || true' EXIT
for _ in $(seq 100); do [ -s "$BOARD_LOG" ] && break; sleep 0.1; done
PORT=$(head -1 "$BOARD_LOG")
echo "emulated board on $PORT"
$SM flash "$OUT/firmware/app-stm32h7/app.bin" --port "$PORT" --verify --go
$SM board info --port "$PORT"
$SM board stream "$WAV" --port "$PORT" --check --export "$OUT/fw" --out "$OUT/board_sent.npy" \
  --force
kill $BOARD_PID
wait $BOARD_PID 2>/dev/null || true
trap - EXIT

step "12. federated adaptation: 4 devices, each holding only what its mask sent for its own
   speakers, adapt the cloud model for 3 rounds in Flower's simulation runtime (flwr run on a
   simulation SuperLink started for the run); then the same on Flower's deployment runtime (a
   SuperLink and 4 SuperNodes on 127.0.0.1)"
$SM federate --manifest "$M" --mask "$R/mask.pt" --slu "$R/slu.pt" --clients 4 --rounds 3 \
  --out "$OUT/federated" --force
$SM federate --manifest "$M" --mask "$R/mask.pt" --slu "$R/slu.pt" --clients 4 --rounds 3 \
  --out "$OUT/federated_deployed" --deployment local --force
echo "and a small language model that reads what the int8 model sends (through the fine-tuned"
echo "cloud model's frozen encoder) and generates the intent: only LoRA and projector travel"
$SM federate --manifest "$M" --mask "$R/mask.pt" --int8 "$OUT/fw/mask.tflite" \
  --slu "$R/slu_masked.pt" --model lm --clients 4 --rounds 5 --out "$OUT/federated_lm" --force

step "13. attack suite: what leaks (content, speaker) and what works (intent), mask vs baselines"
echo "(the full suite with default settings, the longest step of the demo; it trains every"
echo " attacker and baseline encoder and caches them in $OUT/attack/cache/, so a rerun is quick;"
echo " speechmask_int8 is the exported int8 model's own gates, beside the float mask's)"
$SM attack --manifest "$M" --slu "$R/slu.pt" --mask "$R/mask.pt" --slu-masked "$R/slu_masked.pt" \
  --int8 "$OUT/fw/mask.tflite" --out "$OUT/attack" --quiet --force

printf '\nDemo outputs are in %s/: corpus/, stats.json, speakers.png, runs/ (models),\n' "$OUT"
printf 'masked.npy, mask.png (spectrogram with the withheld segments shaded), mask.json,\n'
printf 'fw/ (mask.tflite, mask.onnx, mask_int8.onnx, the generated C and its core, test vectors,\n'
printf 'report.json, report.md, model.blob), firmware/ (the self-test and application images),\n'
printf 'board_sent.npy (what the emulated board sent), federated/, federated_deployed/ and\n'
printf 'federated_lm/ (report.md, rounds.png; deploy/logs/ has the SuperLink'"'"'s and SuperNodes'"'"'\n'
printf 'logs),\n'
printf 'attack/ (report.json, report.md, det.png, examples.png).\n'
