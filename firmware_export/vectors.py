"""Test vectors for the firmware's self-test (`test_vectors.h`), from the references: one
utterance's int16 PCM, its front-end features (`speechmask.features_int`) and what the send steps
make of them (`speechmask.device.send`) at the warp level the reference draws for it; and real
calls of the int8 model with TFLite Micro's outputs. The self-test image streams the PCM through
the C, runs the generated model on the calls and compares every value."""

from __future__ import annotations

import numpy as np

from speechmask.device import send
from speechmask.features_int import log_mel_int
from speechmask.models.mask import MaskConfig

from .headers import BANNER, c_array, stamp_defines


def device_reference(pcm: np.ndarray, cfg: MaskConfig, micro, litert, level: int
                     ) -> tuple[np.ndarray, np.ndarray]:
    """What the device sends for int16 `pcm` at warp `level`, as the firmware computes it: the
    integer front-end's features, the int8 model in TFLite Micro deciding in the device's closed
    loop (`speechmask.device.reference.closed_loop`, the model's own int8 histories, the gates fed
    back) and the send steps' features with closed band groups zeroed. Returns (gates `(S, G)`
    uint8, features `(S, frames_per_segment, n_mels)` int16)."""
    from speechmask.device import histories
    from speechmask.device.int8 import gate_open_above, quantize
    from speechmask.device.reference import closed_loop
    from speechmask.features_int import dequantize

    feats = log_mel_int(pcm, cfg.frontend)
    sent = send.send_int(feats, cfg, level)
    open_above = gate_open_above(cfg, litert.quant_out[0])
    (q_frames, q_state) = litert.quant_in[0], litert.quant_in[-1]

    def decide(inputs):
        frames, *past, state = inputs
        out, *news = micro.run_int8([quantize(frames, *q_frames), *past, quantize(state, *q_state)])
        return out, (out.astype(np.int32) > open_above).astype(np.float32), news

    initial = [np.full((h.frames, h.channels), litert.quant_in[1 + k][1], np.int8)
               for k, h in enumerate(histories(cfg))]
    _, _, gates = closed_loop(cfg, dequantize(feats, cfg.frontend), decide, initial)
    n, segments = cfg.frames_per_segment, len(gates)
    out = sent[: segments * n].reshape(segments, n, cfg.frontend.n_mels).copy()
    for g, (lo, hi) in enumerate(cfg.gate.band_edges(cfg.frontend.n_mels)):
        out[gates[:, g] == 0, :, lo:hi] = 0
    return gates.astype(np.uint8), out


def frontend_vectors(pcm: np.ndarray, cfg: MaskConfig, stamp: dict,
                     calls: list[tuple[list[np.ndarray], list[np.ndarray]]] = (),
                     device: tuple[np.ndarray, np.ndarray] | None = None) -> str:
    """`test_vectors.h` for int16 `pcm` (one whole utterance); for the generated model, `calls`:
    (int8 inputs, TFLite Micro's int8 outputs) of real calls, each flat and in the `.tflite`
    model's input / output order; `device`: what the device sends for `pcm`
    (`device_reference`)."""
    pcm = np.asarray(pcm)
    if pcm.dtype != np.int16 or pcm.ndim != 1 or pcm.size < cfg.frontend.win_length:
        raise ValueError(f"test vectors need 1-D int16 PCM of at least one frame, got "
                         f"{pcm.dtype} {pcm.shape}")
    feats = log_mel_int(pcm, cfg.frontend)
    level = send.utterance_level(feats, cfg)
    sent = send.send_int(feats, cfg, level)
    return "".join([
        BANNER, "#ifndef SPEECHMASK_TEST_VECTORS_H\n#define SPEECHMASK_TEST_VECTORS_H\n\n",
        "#include <stdint.h>\n\n", stamp_defines(stamp),
        f"#define SM_TV_SAMPLES {pcm.size}\n#define SM_TV_FRAMES {len(feats)}\n",
        f"#define SM_TV_WARP_LEVEL {level}\n\n",
        c_array("int16_t", "sm_tv_pcm", pcm, 16, "static "),
        c_array("int16_t", "sm_tv_features", feats, 20, "static "),
        c_array("int16_t", "sm_tv_sent", sent, 20, "static "),
        f"\n#define SM_TV_CALLS {len(calls)}\n",
        c_array("int8_t", "sm_tv_call_in", _flat([a for ins, _ in calls for a in ins]), 24,
                "static "),
        c_array("int8_t", "sm_tv_call_out", _flat([a for _, outs in calls for a in outs]), 24,
                "static "),
        f"\n#define SM_TV_SEGMENTS {0 if device is None else len(device[0])}\n",
        c_array("uint8_t", "sm_tv_gates", np.zeros(1) if device is None else device[0], 32,
                "static "),
        c_array("int16_t", "sm_tv_device_out", np.zeros(1) if device is None else device[1], 20,
                "static "),
        "\n#endif\n"])


def _flat(arrays: list[np.ndarray]) -> np.ndarray:
    return np.concatenate([np.asarray(a, np.int8).reshape(-1) for a in arrays]) if arrays \
        else np.zeros(1, np.int8)
