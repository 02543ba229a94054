"""The firmware's cost, measured on the emulated Cortex-M7 (issue 16): instructions per second of
audio for each step the firmware runs so far (front-end, send steps, the generated int8 mask
network on real calls, and the whole job with gating, sm_device_push), counted under QEMU with
`-icount shift=0` by the board's SysTick (boards/mps2_an500/board.c), the stack's high-water mark
(stack painting), and the flash and static RAM of the firmware (the core objects and the
generated model built for the Cortex-M7, without the self-test's vectors), beside the export's
MAC-based estimate of the mask network and SILENCE-S's published figures.

The count is of instructions, not cycles: a Cortex-M7 issues up to two per cycle and waits on
flash, so "cycles at 480 MHz" below is an estimate at one instruction per cycle.

Usage: python benchmarks/bench_firmware.py --export build/bench_export/fw --out build/bench_firmware
Prints one JSON line and a table; writes bench_firmware.json.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import report  # noqa: E402

from firmware_export.build import M7, WARNINGS, build, run  # noqa: E402
from firmware_export.csources import CORE  # noqa: E402

CLOCK_HZ = 480e6
BUDGET_SHARE = 0.01  # the target: front-end + mask + gating <= 1 % of the core
SILENCE_S = {"ram_kb": 394.9, "ms_per_4s_clip": 912.0}  # SILENCE (NeurIPS 2024), STM32H7


def define(header: Path, name: str) -> int:
    m = re.search(rf"#define {name} (-?\d+)", header.read_text())
    if not m:
        raise SystemExit(f"{header}: no {name}")
    return int(m.group(1))


def core_sizes(export: Path, out: Path) -> dict:
    """text/data/bss of the firmware's objects built for the Cortex-M7 (-O2), summed: the core
    and the export's generated model (weights, parameters, arena)."""
    total = {"text": 0, "data": 0, "bss": 0}
    for src in sorted(CORE.glob("*.c")) + [export / "sm_model.c"]:
        obj = out / (src.stem + ".o")
        subprocess.run(["arm-none-eabi-gcc", *WARNINGS, *M7, "-O2", "-c", "-I", str(export),
                        "-I", str(CORE), "-o", str(obj), str(src)], check=True)
        line = subprocess.run(["arm-none-eabi-size", "-B", str(obj)], capture_output=True,
                              text=True, check=True).stdout.splitlines()[-1].split()
        for key, value in zip(("text", "data", "bss"), line[:3]):
            total[key] += int(value)
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--export", type=Path, required=True, help="export folder (speechmask export)")
    ap.add_argument("--out", type=Path, default=Path("build/bench_firmware"))
    args = ap.parse_args()
    image = build(args.export, "mps2-an500", args.out)
    done = run(image, count=True)
    if done.returncode != 0:
        raise SystemExit(f"{image.elf}: the self-test failed under QEMU:\n{done.stdout}")
    m = re.search(r"^cost: (.*)$", done.stdout, re.M)
    if not m:
        raise SystemExit(f"{image.elf}: no cost line in the self-test's output")
    cost = {k: int(v) for k, v in zip(m.group(1).split()[::2], m.group(1).split()[1::2])}
    rate = define(args.export / "speechmask_frontend.h", "SM_SAMPLE_RATE")
    hop = define(args.export / "speechmask_frontend.h", "SM_HOP_LENGTH")
    per_call = define(args.export / "speechmask_gates.h", "SM_FRAMES_PER_SEGMENT")
    calls_per_second = rate / hop / per_call
    seconds = cost["samples"] / rate
    per_tick = cost["instructions_per_tick"]
    steps = {"frontend": cost["frontend_ticks"] * per_tick / seconds,
             "send": cost["send_ticks"] * per_tick / seconds,
             "mask": cost["model_ticks"] * per_tick / cost["model_calls"] * calls_per_second}
    # the whole job (sm_device_push), measured on its own pass; gating and quantising the
    # model's inputs are what it costs beyond the steps measured alone (a difference)
    total = cost["device_ticks"] * per_tick / seconds
    model_in_pass = cost["model_ticks"] * per_tick / cost["model_calls"] * cost["segments"]
    steps["gating"] = max(0.0, total - (cost["frontend_ticks"] + cost["send_ticks"]) * per_tick
                          / seconds - model_in_pass / seconds)
    sizes = core_sizes(args.export, args.out)
    # static data of the objects, the caller's sm_device_t (one utterance's state), the stack
    ram = sizes["data"] + sizes["bss"] + cost["device_state_bytes"] + cost["stack_bytes"]
    flash = sizes["text"] + sizes["data"]
    export_report = json.loads((args.export / "report.json").read_text()) \
        if (args.export / "report.json").is_file() else {}
    record = {
        "export": str(args.export), "export_id": export_report.get("export_id"),
        "audio_s": round(seconds, 3), "frames": cost["frames"],
        "method": "instructions counted under qemu-system-arm -M mps2-an500 -icount shift=0 "
                  "(SysTick on the 25 MHz processor clock: 40 instructions per tick), streaming "
                  "one hop of PCM per call; cycles at 480 MHz estimated at 1 instruction/cycle",
        "instructions_per_second_audio": {"total": round(total), **{k: round(v) for k, v in
                                                                    steps.items()}},
        "steps_measured": list(steps), "steps_not_yet_in_firmware": [],
        "gating_method": "the whole job's pass minus the steps measured alone",
        "mask_instructions_per_call": round(cost["model_ticks"] * per_tick
                                            / cost["model_calls"]),
        "mask_calls_measured": cost["model_calls"], "calls_per_second": calls_per_second,
        "est_cpu_share_480mhz": total / CLOCK_HZ,
        "est_ms_per_4s_clip": 4.0 * total / CLOCK_HZ * 1e3,
        "ram_bytes": ram, "ram_static_bytes": sizes["data"] + sizes["bss"]
        + cost["device_state_bytes"], "device_state_bytes": cost["device_state_bytes"],
        "stack_high_water_bytes": cost["stack_bytes"], "flash_bytes": flash,
        "tflite_model_bytes": export_report.get("flash_bytes"),
        "tflm_arena_bytes": export_report.get("arena_bytes"),
        "export_est_ms_per_second_480mhz": export_report.get("est_ms_per_second_480mhz"),
        "silence_s": SILENCE_S,
    }
    budget = BUDGET_SHARE * CLOCK_HZ
    table = [("audio streamed", f"{seconds:.2f} s ({cost['frames']} frames), one hop per call"),
             *[(f"{k}, instructions per second of audio", f"{v / 1e6:.2f} M") for k, v in
               steps.items()],
             ("whole job (sm_device_push)", f"{total / 1e6:.2f} M/s = {100 * total / CLOCK_HZ:.2f} % of 480 MHz "
                                f"at 1 IPC (budget for front-end + mask + gating: "
                                f"{budget / 1e6:.1f} M/s)"),
             ("per 4 s clip (estimate)", f"{record['est_ms_per_4s_clip']:.1f} ms "
                                        f"(SILENCE-S: {SILENCE_S['ms_per_4s_clip']:g} ms)"),
             ("flash: code, tables, generated model", f"{flash:,} B (the .tflite for TFLite "
                                                     f"Micro: {record['tflite_model_bytes'] or '-'}"
                                                     " B)"),
             ("RAM, static + stack high-water", f"{ram:,} B ({record['ram_static_bytes']:,} + "
                                                f"{cost['stack_bytes']:,}; SILENCE-S: "
                                                f"{SILENCE_S['ram_kb']:g} KB)"),
             ("mask network per call", f"{record['mask_instructions_per_call']:,} instructions "
                                       f"({cost['model_calls']} real calls; export's estimate: "
                                       f"{record['export_est_ms_per_second_480mhz'] or 0:.2f} ms "
                                       "per second of audio)"),
             ("gating", "the whole job's pass minus the steps measured alone")]
    report("bench_firmware", record, table)


if __name__ == "__main__":
    main()
