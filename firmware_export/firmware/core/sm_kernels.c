/* See sm_kernels.h. Loops follow TFLite's reference kernels' order of accumulation (integer
 * sums are exact in any order while they stay inside int32, which the int8 ranges guarantee for
 * these layer sizes). */
#include "sm_kernels.h"

#include <string.h>

#include "sm_dsp.h"

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

/* MultiplyByQuantizedMultiplier in a few instructions, for a right shift (`right` >= 1) and an
 * accumulator the export has bounded (codegen.py: |acc| < 2^30 and |acc| + 2^(right-1) < 2^31).
 * With a positive multiplier, SaturatingRoundingDoublingHighMul never saturates, and its
 * nudge-then-truncate equals (a * b + 2^30) >> 31 (for a negative product, truncating
 * (ab + 1 - 2^30) / 2^31 toward zero is flooring (ab + 2^30) / 2^31), which is SMMULR of 2a and
 * b; RoundingDivideByPOT, half away from zero, is (x + 2^(e-1) - (x < 0)) >> e. */
static inline int32_t requant_right(int32_t acc, int32_t mult, int32_t right) {
    const int32_t r = sm_mulhr((int32_t)((uint32_t)acc << 1), mult);
    return (r + (1 << (right - 1)) + (r >> 31)) >> right;
}

/* The activation clamp; `full` (a constant where the kernel bodies below are inlined) when the
 * range is all of int8, one SSAT. */
static inline int8_t clamp_out(int32_t v, int32_t lo, int32_t hi, const int full) {
    if (full) return (int8_t)sm_ssat8(v);
    v = v < lo ? lo : v;
    return (int8_t)(v > hi ? hi : v);
}
#define SM_INLINE static inline __attribute__((always_inline))

/* Four outputs' requantisation, offset and clamp. */
SM_INLINE void store4(int8_t *o, int32_t a0, int32_t a1, int32_t a2, int32_t a3,
                      const int32_t *mult, const int32_t *right, int32_t off, int32_t lo,
                      int32_t hi, const int full) {
    o[0] = clamp_out(requant_right(a0, mult[0], right[0]) + off, lo, hi, full);
    o[1] = clamp_out(requant_right(a1, mult[1], right[1]) + off, lo, hi, full);
    o[2] = clamp_out(requant_right(a2, mult[2], right[2]) + off, lo, hi, full);
    o[3] = clamp_out(requant_right(a3, mult[3], right[3]) + off, lo, hi, full);
}

static inline uint32_t load32(const void *p) {
    uint32_t v;
    memcpy(&v, p, 4); /* one LDR: unaligned word loads are legal on a Cortex-M7 */
    return v;
}

SM_INLINE void conv1x1_body(const sm_conv_t c, const int8_t *in, const int16_t *w,
                            const int32_t *bias_eff, const int32_t *mult, const int32_t *right,
                            int8_t *out, const int full) {
    const int32_t positions = c.out_h * c.out_w;
    const int32_t lo = c.act_min, hi = c.act_max, off = c.out_offset;
    for (int32_t pos = 0; pos < positions; pos++) {
        const int8_t *x = &in[pos * c.in_c];
        int8_t *o = &out[pos * c.out_c];
        const int16_t *wg = w;
        for (int32_t oc = 0; oc < c.out_c; oc += 4) { /* four outputs share each input load */
            int32_t a0 = bias_eff[oc], a1 = bias_eff[oc + 1], a2 = bias_eff[oc + 2],
                    a3 = bias_eff[oc + 3];
            for (int32_t i = 0; i < c.in_c; i += 4, wg += 16) {
                const uint32_t xv = load32(&x[i]);
                const uint32_t xe = sm_sxtb16(xv), xo = sm_sxtb16_ror8(xv);
                a0 = sm_smlad(load32(&wg[0]), xe, sm_smlad(load32(&wg[2]), xo, a0));
                a1 = sm_smlad(load32(&wg[4]), xe, sm_smlad(load32(&wg[6]), xo, a1));
                a2 = sm_smlad(load32(&wg[8]), xe, sm_smlad(load32(&wg[10]), xo, a2));
                a3 = sm_smlad(load32(&wg[12]), xe, sm_smlad(load32(&wg[14]), xo, a3));
            }
            store4(&o[oc], a0, a1, a2, a3, &mult[oc], &right[oc], off, lo, hi, full);
        }
    }
}

void sm_conv2d_1x1_s16(const sm_conv_t *p, const int8_t *in, const int16_t *w,
                       const int32_t *bias_eff, const int32_t *mult, const int32_t *right,
                       int8_t *out) {
    const sm_conv_t c = *p; /* in registers: the int8 stores below may alias *p */
    if (c.act_min == -128 && c.act_max == 127)
        conv1x1_body(c, in, w, bias_eff, mult, right, out, 1);
    else
        conv1x1_body(c, in, w, bias_eff, mult, right, out, 0);
}

SM_INLINE void depthwise_body(const sm_conv_t c, const int8_t *in, const int16_t *w,
                              const int32_t *bias_eff, const int32_t *mult,
                              const int32_t *right, int8_t *out, const int full) {
    const int32_t taps = c.k_h * c.k_w;
    int32_t xoff[taps]; /* each tap's input offset from the output position's first tap */
    for (int32_t ky = 0, t = 0; ky < c.k_h; ky++)
        for (int32_t kx = 0; kx < c.k_w; kx++, t++)
            xoff[t] = (c.dil_h * ky * c.in_w + c.dil_w * kx) * c.in_c;
    const int32_t lo = c.act_min, hi = c.act_max, off = c.out_offset;
    for (int32_t oy = 0; oy < c.out_h; oy++)
        for (int32_t ox = 0; ox < c.out_w; ox++) {
            const int8_t *base = &in[(oy * c.stride_h * c.in_w + ox * c.stride_w) * c.in_c];
            int8_t *o = &out[(oy * c.out_w + ox) * c.out_c];
            for (int32_t ch = 0; ch < c.out_c; ch += 4) { /* channels ch..ch+3 in registers */
                int32_t a0 = bias_eff[ch], a1 = bias_eff[ch + 1], a2 = bias_eff[ch + 2],
                        a3 = bias_eff[ch + 3];
                const int8_t *x = base + ch;
                const int16_t *f = &w[ch];
                for (int32_t t = 0; t < taps; t++, f += c.out_c) {
                    const uint32_t xv = load32(&x[xoff[t]]);
                    const uint32_t we = load32(&f[0]), wo = load32(&f[2]);
                    const uint32_t xe = sm_sxtb16(xv), xo = sm_sxtb16_ror8(xv);
                    a0 = sm_smlabb(we, xe, a0); /* lanes: channel ch and ch + 2 */
                    a2 = sm_smlatt(we, xe, a2);
                    a1 = sm_smlabb(wo, xo, a1); /* channel ch + 1 and ch + 3 */
                    a3 = sm_smlatt(wo, xo, a3);
                }
                store4(&o[ch], a0, a1, a2, a3, &mult[ch], &right[ch], off, lo, hi, full);
            }
        }
}

void sm_depthwise_conv2d_s16(const sm_conv_t *p, const int8_t *in, const int16_t *w,
                             const int32_t *bias_eff, const int32_t *mult,
                             const int32_t *right, int8_t *out) {
    const sm_conv_t c = *p;
    if (c.act_min == -128 && c.act_max == 127)
        depthwise_body(c, in, w, bias_eff, mult, right, out, 1);
    else
        depthwise_body(c, in, w, bias_eff, mult, right, out, 0);
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

/* RoundingDivideByPOT(x, e) for any e >= 0 with its terms hoisted: half = 2^(e-1) (0 for e = 0),
 * neg = -1 for e >= 1 (0 for e = 0); exact while x + half stays inside int32. */
static inline int32_t rdbpot_hoisted(int32_t x, int32_t e, int32_t half, int32_t neg) {
    return (x + half + ((x >> 31) & neg)) >> e;
}

void sm_add(const sm_add_t *p, int32_t n, const int8_t *a, const int8_t *b, int32_t n_b,
            int8_t *out) {
    const sm_add_t q = *p; /* in registers: the int8 stores below may alias *p */
    /* The export's ADD has left_shift 20 and multipliers at most one (codegen.py, `_add`), so
     * |x|, |y| <= 255 * 2^20 < 2^28, each scaled input is no larger, their sum stays below 2^29,
     * and every SaturatingRoundingDoublingHighMul is the SMMULR of twice its input
     * (requant_right's reasoning). */
    const int32_t e1 = -q.in1_shift, e2 = -q.in2_shift, eo = -q.out_shift;
    const int32_t h1 = e1 ? 1 << (e1 - 1) : 0, h2 = e2 ? 1 << (e2 - 1) : 0;
    const int32_t ho = eo ? 1 << (eo - 1) : 0;
    const int32_t g1 = e1 ? -1 : 0, g2 = e2 ? -1 : 0, go = eo ? -1 : 0;
    for (int32_t i = 0; i < n; i++) {
        const int32_t x = (int32_t)((uint32_t)(q.in1_offset + a[i]) << (q.left_shift + 1));
        const int32_t y =
            (int32_t)((uint32_t)(q.in2_offset + b[n_b == 1 ? 0 : i]) << (q.left_shift + 1));
        const int32_t sum = rdbpot_hoisted(sm_mulhr(x, q.in1_mult), e1, h1, g1) +
                            rdbpot_hoisted(sm_mulhr(y, q.in2_mult), e2, h2, g2);
        const int32_t raw =
            rdbpot_hoisted(sm_mulhr((int32_t)((uint32_t)sum << 1), q.out_mult), eo, ho, go);
        out[i] = clamp_out(raw + q.out_offset, q.act_min, q.act_max, 0);
    }
}

void sm_add_lut_init(const sm_add_t *p, int32_t *lut) {
    for (int32_t v = -128; v < 128; v++) { /* TFLite's arithmetic, as sm_mbqm's parts */
        lut[v + 128] = sm_rdbpot(sm_srdhm((p->in1_offset + v) * (1 << p->left_shift),
                                          p->in1_mult), -p->in1_shift);
        lut[v + 384] = sm_rdbpot(sm_srdhm((p->in2_offset + v) * (1 << p->left_shift),
                                          p->in2_mult), -p->in2_shift);
    }
}

SM_INLINE void add_lut_body(const sm_add_t q, const int32_t *lut, int32_t n, const int8_t *a,
                            const int8_t *b, const int broadcast, const int full, int8_t *out) {
    const int32_t eo = -q.out_shift, ho = eo ? 1 << (eo - 1) : 0, go = eo ? -1 : 0;
    const int32_t *t1 = lut + 128, *t2 = lut + 384;
    const int32_t b0 = t2[b[0]];
    for (int32_t i = 0; i < n; i++) { /* the sum's bound: sm_add's comment */
        const int32_t sum = t1[a[i]] + (broadcast ? b0 : t2[b[i]]);
        const int32_t raw =
            rdbpot_hoisted(sm_mulhr((int32_t)((uint32_t)sum << 1), q.out_mult), eo, ho, go);
        out[i] = clamp_out(raw + q.out_offset, q.act_min, q.act_max, full);
    }
}

void sm_add_lut(const sm_add_t *p, const int32_t *lut, int32_t n, const int8_t *a,
                const int8_t *b, int32_t n_b, int8_t *out) {
    const sm_add_t q = *p;
    const int full = q.act_min == -128 && q.act_max == 127;
    if (n_b == 1)
        add_lut_body(q, lut, n, a, b, 1, 0, out);
    else if (full)
        add_lut_body(q, lut, n, a, b, 0, 1, out);
    else
        add_lut_body(q, lut, n, a, b, 0, 0, out);
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
        for (int32_t ox = 0; ox < out_w; ox++) {
            /* the window's rows and columns inside the input, once per position */
            const int32_t y0 = oy * stride_h - pad_h, x0 = ox * stride_w - pad_w;
            const int32_t ya = y0 < 0 ? 0 : y0, yb = y0 + k_h > in_h ? in_h : y0 + k_h;
            const int32_t xa = x0 < 0 ? 0 : x0, xb = x0 + k_w > in_w ? in_w : x0 + k_w;
            int32_t count = (yb - ya) * (xb - xa);
            if (count <= 0) count = 1;
            for (int32_t ch = 0; ch < c; ch++) {
                int32_t acc = 0;
                for (int32_t iy = ya; iy < yb; iy++)
                    for (int32_t ix = xa; ix < xb; ix++) acc += in[(iy * in_w + ix) * c + ch];
                acc = acc > 0 ? (acc + count / 2) / count : (acc - count / 2) / count;
                out[(oy * out_w + ox) * c + ch] = clamp8(acc, act_min, act_max);
            }
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
