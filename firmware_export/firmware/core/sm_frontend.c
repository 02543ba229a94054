/* The fixed-point log-mel front-end; the arithmetic of speechmask/features_int.py, step for step
 * (its docstring derives the bounds that keep every intermediate inside int32 / int64). Right
 * shifts of negative values are arithmetic, as GCC and Clang define them on two's complement. */
#include "sm_frontend.h"

#include <string.h>

#define SM_N_MEL_BINS (SM_N_FFT / 2 + 1)

/* (x + 2^(s-1)) >> s: round half up (the reference's round_shift). */
static int64_t round_shift64(int64_t x, int s) {
    return s > 0 ? (x + ((int64_t)1 << (s - 1))) >> s : x;
}

static int16_t sat16(int64_t v) {
    return (int16_t)(v > 32767 ? 32767 : (v < -32768 ? -32768 : v));
}

#define SM_M (SM_N_FFT / 2) /* the complex FFT's points: the real frame's even and odd samples */

/* Radix-2 decimation-in-time FFT of SM_M points, in place on bit-reversed input, Q31 twiddles
 * (W_M^k = W_N^2k), no scaling. */
static void fft_q31(int32_t *re, int32_t *im) {
    for (int half = 1; half < SM_M; half <<= 1) {
        const int step = SM_N_FFT / (2 * half); /* 2 * (SM_M / (2 * half)) in the N table */
        for (int blk = 0; blk < SM_M; blk += 2 * half) {
            for (int k = 0; k < half; k++) {
                /* 32 x 32 -> 64-bit products (one SMULL/SMLAL each on a Cortex-M) */
                const int32_t wr = sm_twiddle_re_q31[k * step], wi = sm_twiddle_im_q31[k * step];
                const int a = blk + k, b = a + half;
                const int64_t t_re =
                    ((int64_t)re[b] * wr - (int64_t)im[b] * wi + ((int64_t)1 << 30)) >> 31;
                const int64_t t_im =
                    ((int64_t)re[b] * wi + (int64_t)im[b] * wr + ((int64_t)1 << 30)) >> 31;
                re[b] = (int32_t)(re[a] - t_re);
                im[b] = (int32_t)(im[a] - t_im);
                re[a] = (int32_t)(re[a] + t_re);
                im[a] = (int32_t)(im[a] + t_im);
            }
        }
    }
}

/* log2(v) in Q16 for v > 0: the MSB's position plus a table of log2(1 + i/256), interpolated. */
static int64_t ilog2_q16(int64_t v) {
    const int e = 63 - __builtin_clzll((unsigned long long)v);
    const int64_t frac = (e >= 30 ? v >> (e - 30) : v << (30 - e)) - ((int64_t)1 << 30);
    const int shift = 30 - SM_LOG2_TABLE_BITS;
    const int64_t idx = frac >> shift, rem = frac & (((int64_t)1 << shift) - 1);
    const int64_t lo = sm_log2_q16[idx], hi = sm_log2_q16[idx + 1];
    return ((int64_t)e << SM_LOG2_FRAC_BITS) + lo + round_shift64((hi - lo) * rem, shift);
}

void sm_frontend_frame(const int16_t *frame, int16_t *mel) {
    static int32_t re[SM_M], im[SM_M];
    static int64_t power[SM_N_MEL_BINS];
    for (int n = 0; n < SM_M; n++) { /* z = even + i odd samples, windowed, bit-reversed order */
        const int j = 2 * sm_bitrev[n];
        re[n] = j < SM_WIN_LENGTH
                    ? (int32_t)round_shift64((int64_t)frame[j] * sm_window_q15[j], SM_WINDOW_SHIFT)
                    : 0;
        im[n] = j + 1 < SM_WIN_LENGTH ? (int32_t)round_shift64((int64_t)frame[j + 1] *
                                                                    sm_window_q15[j + 1],
                                                                SM_WINDOW_SHIFT)
                                      : 0;
    }
    fft_q31(re, im);
    for (int k = 0; k <= SM_M; k++) { /* the split: 2X[k] = E + W_N^k D, then its power */
        const int a = k % SM_M, c = (SM_M - k) % SM_M;
        const int64_t e_re = (int64_t)re[a] + re[c], e_im = (int64_t)im[a] - im[c];
        const int64_t d_re = (int64_t)im[a] + im[c], d_im = (int64_t)re[c] - re[a];
        int64_t p_re, p_im;
        if (k < SM_M) {
            const int64_t wr = sm_twiddle_re_q31[k], wi = sm_twiddle_im_q31[k];
            p_re = (wr * d_re - wi * d_im + ((int64_t)1 << 30)) >> 31;
            p_im = (wr * d_im + wi * d_re + ((int64_t)1 << 30)) >> 31;
        } else { /* W_N^M = -1 exactly */
            p_re = -d_re;
            p_im = -d_im;
        }
        const int64_t x_re = e_re + p_re, x_im = e_im + p_im;
        power[k] = round_shift64(x_re * x_re + x_im * x_im, SM_POWER_SHIFT + 2);
    }
    for (int m = 0; m < SM_N_MELS; m++) {
        int64_t acc = SM_FLOOR_Q;
        const int16_t *w = &sm_mel_weights[sm_mel_offset[m]];
        for (int k = 0; k < sm_mel_count[m]; k++) acc += power[sm_mel_first[m] + k] * w[k];
        const int64_t log2 = ilog2_q16(acc) - ((int64_t)SM_MEL_SCALE_LOG2 << SM_LOG2_FRAC_BITS);
        mel[m] = sat16(round_shift64(log2 * SM_LN2_Q30,
                                     SM_LOG2_FRAC_BITS + 30 - SM_LOG_FRAC_BITS));
    }
}

void sm_frontend_reset(sm_frontend_t *s) { s->fill = 0; }

int32_t sm_frontend_push(sm_frontend_t *s, const int16_t *pcm, int32_t n, int16_t *out) {
    int32_t frames = 0;
    while (n > 0) {
        int32_t take = SM_WIN_LENGTH - s->fill;
        if (take > n) take = n;
        memcpy(&s->window[s->fill], pcm, (size_t)take * sizeof(int16_t));
        s->fill += take;
        pcm += take;
        n -= take;
        if (s->fill == SM_WIN_LENGTH) {
            sm_frontend_frame(s->window, &out[frames * SM_N_MELS]);
            frames++;
            memmove(s->window, &s->window[SM_HOP_LENGTH],
                    (SM_WIN_LENGTH - SM_HOP_LENGTH) * sizeof(int16_t));
            s->fill = SM_WIN_LENGTH - SM_HOP_LENGTH;
        }
    }
    return frames;
}
