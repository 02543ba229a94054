"""What the device must send, from an export folder alone: the integer front-end, the int8 model
under TFLite Micro's host interpreter in the device's closed loop, the send steps and the gating
(`firmware_export.vectors.device_reference`, the reference the firmware's self-test checks
against). `board stream --check` compares the board with it; the plain board emulator answers
with it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .image import SerialToolError


class ExportReference:
    def __init__(self, export_dir: Path):
        from speechmask.device.int8 import LiteRT, read_tflite_stamp
        from speechmask.models.mask import MaskConfig

        from ..tflite_int8 import TFLM, arena_bytes

        export_dir = Path(export_dir)
        model_path, cfg_path = export_dir / "mask.tflite", export_dir / "mask_config.json"
        blob_path = export_dir / "model.blob"
        for path in (model_path, cfg_path, blob_path):
            if not path.is_file():
                raise SerialToolError(f"{path}: missing; is {export_dir} the folder `speechmask "
                                      "export` wrote (exports older than mask_config.json and "
                                      "model.blob need exporting again)?")
        try:
            self.cfg = MaskConfig.from_dict(json.loads(cfg_path.read_text()))
        except (ValueError, TypeError, KeyError) as exc:
            raise SerialToolError(f"{cfg_path}: not a mask configuration ({exc})") from None
        model = model_path.read_bytes()
        self.blob = blob_path.read_bytes()  # the generated firmware's constants (MODEL upload)
        self.stamp = read_tflite_stamp(model) or {}
        self.litert = LiteRT(model, self.cfg)
        self.micro = TFLM(model, arena_bytes(model) + 4096, self.litert)
        fe = self.cfg.frontend
        self.band_edges = self.cfg.gate.band_edges(fe.n_mels)
        self.samples_per_segment = fe.hop_length * self.cfg.frames_per_segment

    @property
    def export_id(self) -> str:
        return str(self.stamp.get("export_id", ""))

    def run(self, pcm: np.ndarray, level: int) -> tuple[np.ndarray, np.ndarray]:
        """(gates `(S, G)` uint8, features `(S, frames_per_segment, n_mels)` int16) for int16
        `pcm` from the utterance's start, at warp `level`."""
        from ..vectors import device_reference

        if len(pcm) < self.cfg.frontend.win_length:
            g = len(self.band_edges)
            return (np.zeros((0, g), np.uint8),
                    np.zeros((0, self.cfg.frames_per_segment, self.cfg.frontend.n_mels),
                             np.int16))
        return device_reference(np.asarray(pcm, np.int16), self.cfg, self.micro, self.litert,
                                level)

    def open_bytes(self, gates: bytes) -> int:
        """Bytes of features a segment with `gates` sends: its open band groups' int16 values."""
        per_frame = sum(hi - lo for (lo, hi), g in zip(self.band_edges, gates) if g)
        return 2 * self.cfg.frames_per_segment * per_frame

    def pack(self, gates: np.ndarray, features: np.ndarray) -> bytes:
        """One segment as it leaves the device: the open groups' features, frame by frame."""
        rows = [features[:, lo:hi] for (lo, hi), g in zip(self.band_edges, gates) if g]
        if not rows:
            return b""
        return np.ascontiguousarray(np.concatenate(rows, axis=1), "<i2").tobytes()
