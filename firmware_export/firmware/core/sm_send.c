/* The send steps; the arithmetic of speechmask/device/bandnorm.py, warp.py and level.py (their
 * docstrings give it and its bounds), and the order of speechmask.device.send.StreamingSend. */
#include "sm_send.h"

#include "sm_dsp.h"

static inline int16_t sat16(int32_t v) { return (int16_t)sm_ssat16(v); } /* one SSAT */

/* d / n rounded half away from zero, n > 0, h = n / 2: the quotient of |d| with d's sign put
 * back by (q ^ s) - s, s = d >> 31 (all ones when d < 0): no branch */
static inline int32_t div_round(int32_t d, int32_t n, int32_t h) {
    const int32_t s = d >> 31;
    const int32_t q = (int32_t)((uint32_t)((d ^ s) - s + h) / (uint32_t)n);
    return (q ^ s) - s;
}

int sm_send_reset(sm_send_t *s, int32_t level) {
    if (level < -SM_SEND_WARP_LEVELS || level > SM_SEND_WARP_LEVELS) return -1;
    for (int b = 0; b < SM_N_MELS; b++) {
        s->mean[b] = 0;
#if SM_SEND_NORM_SCALE
        s->dev[b] = 0;
#endif
    }
    s->count = 0;
    s->level = level;
    return 0;
}

void sm_send_frame(sm_send_t *s, const int16_t *x, int16_t *out) {
    int16_t y[SM_N_MELS];
#if SM_SEND_NORM_FRAMES > 0
    const int f = SM_SEND_NORM_FRAC_BITS;
    if (s->count < SM_SEND_NORM_FRAMES) s->count++;
    const int32_t n = s->count, h = n / 2;
    for (int b = 0; b < SM_N_MELS; b++) {
        const int32_t d = ((int32_t)x[b] << f) - s->mean[b]; /* |d| < 2^(16 + f) */
        s->mean[b] += div_round(d, n, h);
#if SM_SEND_NORM_SCALE
        const int32_t e = sat16(x[b] - ((s->mean[b] + (1 << (f - 1))) >> f));
        s->dev[b] += div_round(((e >= 0 ? e : -e) << f) - s->dev[b], n, h); /* 0..2^(15 + f) */
        int32_t den = (s->dev[b] + (1 << (f - 1))) >> f; /* >= 0: dev is */
        if (den < sm_send_norm_floor[b]) den = sm_send_norm_floor[b];
        /* |e * scale| <= 2^15 * (2^15 - 1) < 2^30 */
        y[b] = sat16(div_round(e * sm_send_norm_scale[b], den, (int32_t)((uint32_t)den >> 1)) +
                     sm_send_norm_target[b]);
#else
        y[b] = sat16(x[b] - ((s->mean[b] + (1 << (f - 1))) >> f) + sm_send_norm_target[b]);
#endif
    }
#else
    for (int b = 0; b < SM_N_MELS; b++) y[b] = x[b];
#endif
#if SM_SEND_WARP_LEVELS > 0
    if (s->level != 0) {
        const int row = (s->level + SM_SEND_WARP_LEVELS) * SM_N_MELS;
        const int w_bits = SM_SEND_WARP_WEIGHT_BITS;
        for (int b = 0; b < SM_N_MELS; b++) {
            const int j = sm_send_warp_index[row + b];
            const int32_t a = y[j], d = (int32_t)y[j + 1] - a;
            out[b] = sat16(a + ((d * sm_send_warp_weight[row + b] + (1 << (w_bits - 1))) >> w_bits));
        }
    } else {
        for (int b = 0; b < SM_N_MELS; b++) out[b] = y[b];
    }
#else
    (void)s->level;
    for (int b = 0; b < SM_N_MELS; b++) out[b] = y[b];
#endif
#if SM_SEND_LEVEL
    int32_t sum = 0; /* |sum| <= SM_N_MELS * 2^15 */
    for (int b = 0; b < SM_N_MELS; b++) sum += out[b];
    /* floor((sum + n / 2) / n): round half up, on a sum shifted to be non-negative */
    const int32_t m = (int32_t)((uint32_t)(sum + SM_N_MELS / 2 + SM_N_MELS * 32768) /
                                SM_N_MELS) - 32768;
    for (int b = 0; b < SM_N_MELS; b++) out[b] = sat16(out[b] - m + SM_SEND_LEVEL_TARGET);
#endif
}
