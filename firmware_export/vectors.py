"""Test vectors for the firmware's self-test (`test_vectors.h`), from the Python reference: one
utterance's int16 PCM, its front-end features (`speechmask.features_int`) and what the send steps
make of them (`speechmask.device.send`) at the warp level the reference draws for it. The
self-test image streams the PCM through the C and compares every value."""

from __future__ import annotations

import numpy as np

from speechmask.device import send
from speechmask.features_int import log_mel_int
from speechmask.models.mask import MaskConfig

from .headers import BANNER, c_array, stamp_defines


def frontend_vectors(pcm: np.ndarray, cfg: MaskConfig, stamp: dict) -> str:
    """`test_vectors.h` for int16 `pcm` (one whole utterance)."""
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
        "\n#endif\n"])
