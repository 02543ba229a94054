"""Run as `python -m firmware_export._tflm_probe MODEL ARENA`: allocate MODEL in TFLite Micro's host
interpreter and print its allocation record. A separate process because the host interpreter
crashes (rather than raising) when later used after a failed allocation."""

import sys

from tflite_micro.python.tflite_micro import runtime

if __name__ == "__main__":
    with open(sys.argv[1], "rb") as f:
        runtime.Interpreter.from_bytes(f.read(), arena_size=int(sys.argv[2])).print_allocations()
