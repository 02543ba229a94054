/* See sm_kernels.h. Loops follow TFLite's reference kernels' order of accumulation (integer
 * sums are exact in any order while they stay inside int32, which the int8 ranges guarantee for
 * these layer sizes). */
#include "sm_kernels.h"

#include <string.h>

/* SaturatingRoundingDoublingHighMul: (a * b * 2 + 2^31 rounding) >> 32, saturating the one
 * overflowing case; the division by 2^31 truncates toward zero, as gemmlowp's does. */
int32_t sm_srdhm(int32_t a, int32_t b) {
    if (a == b && a == INT32_MIN) return INT32_MAX;
    const int64_t ab = (int64_t)a * (int64_t)b;
    const int64_t x = ab + (ab >= 0 ? (1 << 30) : (1 - (1 << 30)));
    /* x / 2^31 truncated toward zero, as shifts: a 64-bit division is a library call on the M7 */
    return (int32_t)((x >= 0 ? x : x + (((int64_t)1 << 31) - 1)) >> 31);
}

/* RoundingDivideByPOT: x / 2^exponent, rounding half away from zero. */
int32_t sm_rdbpot(int32_t x, int32_t exponent) {
    const int32_t mask = (int32_t)(((int64_t)1 << exponent) - 1);
    const int32_t remainder = x & mask;
    const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

/* MultiplyByQuantizedMultiplier (TFLite's double rounding): shift > 0 multiplies first. */
int32_t sm_mbqm(int32_t x, int32_t multiplier, int32_t shift) {
    const int32_t left = shift > 0 ? shift : 0, right = shift > 0 ? 0 : -shift;
    return sm_rdbpot(sm_srdhm((int32_t)((uint32_t)x << left), multiplier), right);
}

static int8_t clamp8(int32_t v, int32_t lo, int32_t hi) {
    return (int8_t)(v < lo ? lo : (v > hi ? hi : v));
}

#if defined(__ARM_FEATURE_SIMD32) && __ARM_FEATURE_SIMD32
#include <arm_acle.h>

/* Four int8 products per step: each word's bytes 0 and 2, then 1 and 3, sign-extended to 16-bit
 * lanes (SXTB16) and multiplied and summed in pairs (SMLAD). Unaligned word loads are legal on a
 * Cortex-M7; memcpy lets the compiler emit them. */
int32_t sm_dot_s8(const int8_t *a, const int8_t *b, int32_t n) {
    int32_t acc = 0, i = 0;
    for (; i + 4 <= n; i += 4) {
        uint32_t x, y;
        memcpy(&x, a + i, 4);
        memcpy(&y, b + i, 4);
        acc = __smlad(__sxtb16(x), __sxtb16(y), acc);
        acc = __smlad(__sxtb16((x >> 8) | (x << 24)), __sxtb16((y >> 8) | (y << 24)), acc);
    }
    for (; i < n; i++) acc += a[i] * b[i];
    return acc;
}
#else
int32_t sm_dot_s8(const int8_t *a, const int8_t *b, int32_t n) {
    int32_t acc = 0;
    for (int32_t i = 0; i < n; i++) acc += a[i] * b[i];
    return acc;
}
#endif

void sm_conv2d_valid(const sm_conv_t *p, const int8_t *in, const int8_t *w,
                     const int32_t *bias_eff, const int32_t *mult, const int32_t *shift,
                     int8_t *out) {
    const sm_conv_t c = *p; /* in registers: the int8 stores below may alias *p */
    const int32_t row = c.k_w * c.in_c;
    for (int32_t oy = 0; oy < c.out_h; oy++)
        for (int32_t ox = 0; ox < c.out_w; ox++) {
            int8_t *o = &out[(oy * c.out_w + ox) * c.out_c];
            for (int32_t oc = 0; oc < c.out_c; oc++) {
                int32_t acc = bias_eff[oc];
                const int8_t *f = &w[oc * c.k_h * row];
                for (int32_t ky = 0; ky < c.k_h; ky++) {
                    const int32_t iy = oy * c.stride_h + c.dil_h * ky;
                    for (int32_t kx = 0; kx < c.k_w; kx++) {
                        const int32_t ix = ox * c.stride_w + c.dil_w * kx;
                        acc += sm_dot_s8(&in[(iy * c.in_w + ix) * c.in_c],
                                         &f[ky * row + kx * c.in_c], c.in_c);
                    }
                }
                o[oc] = clamp8(sm_mbqm(acc, mult[oc], shift[oc]) + c.out_offset, c.act_min,
                               c.act_max);
            }
        }
}

void sm_depthwise_conv2d_valid(const sm_conv_t *p, const int8_t *in, const int8_t *w,
                               const int32_t *bias_eff, const int32_t *mult,
                               const int32_t *shift, int8_t *out) {
    const sm_conv_t c = *p; /* in registers: the int8 stores below may alias *p */
    int32_t acc[c.out_c];   /* one output position's channels, summed tap by tap */
    for (int32_t oy = 0; oy < c.out_h; oy++)
        for (int32_t ox = 0; ox < c.out_w; ox++) {
            for (int32_t oc = 0; oc < c.out_c; oc++) acc[oc] = bias_eff[oc];
            for (int32_t ky = 0; ky < c.k_h; ky++)
                for (int32_t kx = 0; kx < c.k_w; kx++) {
                    const int32_t iy = oy * c.stride_h + c.dil_h * ky;
                    const int32_t ix = ox * c.stride_w + c.dil_w * kx;
                    const int8_t *x = &in[(iy * c.in_w + ix) * c.in_c];
                    const int8_t *f = &w[(ky * c.k_w + kx) * c.out_c];
                    if (c.depth_multiplier == 1) { /* channel oc reads input channel oc */
                        for (int32_t oc = 0; oc < c.out_c; oc++) acc[oc] += f[oc] * x[oc];
                    } else {
                        for (int32_t oc = 0; oc < c.out_c; oc++)
                            acc[oc] += f[oc] * x[oc / c.depth_multiplier];
                    }
                }
            int8_t *o = &out[(oy * c.out_w + ox) * c.out_c];
            for (int32_t oc = 0; oc < c.out_c; oc++)
                o[oc] = clamp8(sm_mbqm(acc[oc], mult[oc], shift[oc]) + c.out_offset, c.act_min,
                               c.act_max);
        }
}

void sm_conv2d(const sm_conv_t *p, const int8_t *in, const int8_t *w, const int32_t *bias,
               const int32_t *mult, const int32_t *shift, int8_t *out) {
    const sm_conv_t c = *p;
    for (int32_t oy = 0; oy < c.out_h; oy++)
        for (int32_t ox = 0; ox < c.out_w; ox++)
            for (int32_t oc = 0; oc < c.out_c; oc++) {
                const int32_t y0 = oy * c.stride_h - c.pad_h, x0 = ox * c.stride_w - c.pad_w;
                int32_t acc = 0;
                for (int32_t ky = 0; ky < c.k_h; ky++) {
                    const int32_t iy = y0 + c.dil_h * ky;
                    if (iy < 0 || iy >= c.in_h) continue;
                    for (int32_t kx = 0; kx < c.k_w; kx++) {
                        const int32_t ix = x0 + c.dil_w * kx;
                        if (ix < 0 || ix >= c.in_w) continue;
                        const int8_t *x = &in[(iy * c.in_w + ix) * c.in_c];
                        const int8_t *f = &w[((oc * c.k_h + ky) * c.k_w + kx) * c.in_c];
                        for (int32_t ic = 0; ic < c.in_c; ic++)
                            acc += f[ic] * (x[ic] + c.in_offset);
                    }
                }
                if (bias) acc += bias[oc];
                acc = sm_mbqm(acc, mult[oc], shift[oc]) + c.out_offset;
                out[(oy * c.out_w + ox) * c.out_c + oc] = clamp8(acc, c.act_min, c.act_max);
            }
}

void sm_depthwise_conv2d(const sm_conv_t *p, const int8_t *in, const int8_t *w,
                         const int32_t *bias, const int32_t *mult, const int32_t *shift,
                         int8_t *out) {
    const sm_conv_t c = *p;
    for (int32_t oy = 0; oy < c.out_h; oy++)
        for (int32_t ox = 0; ox < c.out_w; ox++)
            for (int32_t ic = 0; ic < c.in_c; ic++)
                for (int32_t m = 0; m < c.depth_multiplier; m++) {
                    const int32_t oc = m + ic * c.depth_multiplier;
                    const int32_t y0 = oy * c.stride_h - c.pad_h;
                    const int32_t x0 = ox * c.stride_w - c.pad_w;
                    int32_t acc = 0;
                    for (int32_t ky = 0; ky < c.k_h; ky++) {
                        const int32_t iy = y0 + c.dil_h * ky;
                        if (iy < 0 || iy >= c.in_h) continue;
                        for (int32_t kx = 0; kx < c.k_w; kx++) {
                            const int32_t ix = x0 + c.dil_w * kx;
                            if (ix < 0 || ix >= c.in_w) continue;
                            acc += w[(ky * c.k_w + kx) * c.out_c + oc] *
                                   (in[(iy * c.in_w + ix) * c.in_c + ic] + c.in_offset);
                        }
                    }
                    if (bias) acc += bias[oc];
                    acc = sm_mbqm(acc, mult[oc], shift[oc]) + c.out_offset;
                    out[(oy * c.out_w + ox) * c.out_c + oc] = clamp8(acc, c.act_min, c.act_max);
                }
}

void sm_fully_connected(int32_t batches, int32_t depth, int32_t units, const int8_t *in,
                        const int8_t *w, const int32_t *bias, int32_t in_offset, int32_t w_offset,
                        int32_t out_offset, int32_t mult, int32_t shift, int32_t act_min,
                        int32_t act_max, int8_t *out) {
    for (int32_t b = 0; b < batches; b++)
        for (int32_t u = 0; u < units; u++) {
            int32_t acc = 0;
            for (int32_t d = 0; d < depth; d++)
                acc += (w[u * depth + d] + w_offset) * (in[b * depth + d] + in_offset);
            if (bias) acc += bias[u];
            acc = sm_mbqm(acc, mult, shift) + out_offset;
            out[b * units + u] = clamp8(acc, act_min, act_max);
        }
}

void sm_add(const sm_add_t *p, int32_t n, const int8_t *a, const int8_t *b, int32_t n_b,
            int8_t *out) {
    const sm_add_t q = *p; /* in registers: the int8 stores below may alias *p */
    for (int32_t i = 0; i < n; i++) {
        const int32_t x = (q.in1_offset + a[i]) * (1 << q.left_shift);
        const int32_t y = (q.in2_offset + b[n_b == 1 ? 0 : i]) * (1 << q.left_shift);
        const int32_t sum = sm_rdbpot(sm_srdhm(x, q.in1_mult), -q.in1_shift) +
                            sm_rdbpot(sm_srdhm(y, q.in2_mult), -q.in2_shift);
        const int32_t raw = sm_rdbpot(sm_srdhm(sum, q.out_mult), -q.out_shift) + q.out_offset;
        out[i] = clamp8(raw, q.act_min, q.act_max);
    }
}

void sm_mul(int32_t n, const int8_t *a, const int8_t *b, int32_t n_b, int32_t in1_offset,
            int32_t in2_offset, int32_t out_offset, int32_t mult, int32_t shift, int32_t act_min,
            int32_t act_max, int8_t *out) {
    for (int32_t i = 0; i < n; i++) {
        const int32_t x = in1_offset + a[i], y = in2_offset + b[n_b == 1 ? 0 : i];
        out[i] = clamp8(out_offset + sm_mbqm(x * y, mult, shift), act_min, act_max);
    }
}

void sm_average_pool(int32_t in_h, int32_t in_w, int32_t c, int32_t out_h, int32_t out_w,
                     int32_t k_h, int32_t k_w, int32_t stride_h, int32_t stride_w, int32_t pad_h,
                     int32_t pad_w, int32_t act_min, int32_t act_max, const int8_t *in,
                     int8_t *out) {
    for (int32_t oy = 0; oy < out_h; oy++)
        for (int32_t ox = 0; ox < out_w; ox++)
            for (int32_t ch = 0; ch < c; ch++) {
                const int32_t y0 = oy * stride_h - pad_h, x0 = ox * stride_w - pad_w;
                int32_t acc = 0, count = 0;
                for (int32_t ky = 0; ky < k_h; ky++)
                    for (int32_t kx = 0; kx < k_w; kx++) {
                        const int32_t iy = y0 + ky, ix = x0 + kx;
                        if (iy < 0 || iy >= in_h || ix < 0 || ix >= in_w) continue;
                        acc += in[(iy * in_w + ix) * c + ch];
                        count++;
                    }
                if (count == 0) count = 1;
                acc = acc > 0 ? (acc + count / 2) / count : (acc - count / 2) / count;
                out[(oy * out_w + ox) * c + ch] = clamp8(acc, act_min, act_max);
            }
}

void sm_lookup(int32_t n, const int8_t *in, const int8_t *table, int8_t *out) {
    for (int32_t i = 0; i < n; i++) out[i] = table[(uint8_t)(in[i] + 128)];
}

void sm_concat(int32_t n_inputs, const int8_t *const *in, const int32_t *inner, int32_t outer,
               int8_t *out) {
    for (int32_t o = 0; o < outer; o++)
        for (int32_t i = 0; i < n_inputs; i++) {
            memcpy(out, &in[i][o * inner[i]], (size_t)inner[i]);
            out += inner[i];
        }
}
