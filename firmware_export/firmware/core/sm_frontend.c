/* The fixed-point log-mel front-end; the arithmetic of speechmask/features_int.py, step for step
 * (its docstring derives the bounds that keep every intermediate inside int32 / int64, and
 * check_layout refuses layouts that would not). Right shifts of negative values are arithmetic,
 * as GCC and Clang define them on two's complement. */
#include "sm_frontend.h"

#include <string.h>

#include "sm_dsp.h"

#if !defined(SM_FRONTEND_TABLES_VERSION) || SM_FRONTEND_TABLES_VERSION != 2
#error "speechmask_frontend.h comes from another speechmask version than sm_frontend.c: re-run speechmask export"
#endif

#define SM_N_MEL_BINS (SM_N_FFT / 2 + 1)

static int16_t sat16(int64_t v) {
    return (int16_t)(v > 32767 ? 32767 : (v < -32768 ? -32768 : v));
}

#define SM_M (SM_N_FFT / 2) /* the complex FFT's points: the real frame's even and odd samples */

/* log2(SM_M): the FFT runs its stages two at a time, after one single stage if this is odd */
#define SM_LOG2_M (SM_M == 8 ? 3 : SM_M == 16 ? 4 : SM_M == 32 ? 5 : SM_M == 64 ? 6 \
                   : SM_M == 128 ? 7 : SM_M == 256 ? 8 : SM_M == 512 ? 9 : SM_M == 1024 ? 10 : -1)
#if SM_LOG2_M < 0
#error "SM_N_FFT must be a power of two from 16 to 2048"
#endif

/* b * w / 2 for a Q31 twiddle w (the reference's _half_product): two instructions a part. */
#define SM_HALF_PRODUCT(tr, ti, br, bi, wr, wi)         \
    do {                                               \
        (tr) = sm_mlshr(sm_mulhr((br), (wr)), (bi), (wi)); \
        (ti) = sm_mlahr(sm_mulhr((br), (wi)), (bi), (wr)); \
    } while (0)

/* One halving radix-2 butterfly on values held in locals: a' = a/2 + b w/2, b' = a/2 - b w/2
 * (a >> 1 then one add or subtract: a single ADD/RSB with a shifted operand on the M7). */
#define SM_BUTTERFLY(ar, ai, br, bi, wr, wi)           \
    do {                                               \
        int32_t tr_, ti_;                              \
        SM_HALF_PRODUCT(tr_, ti_, br, bi, wr, wi);     \
        const int32_t hr_ = (ar) >> 1, hi_ = (ai) >> 1; \
        (ar) = hr_ + tr_;                              \
        (ai) = hi_ + ti_;                              \
        (br) = hr_ - tr_;                              \
        (bi) = hi_ - ti_;                              \
    } while (0)

/* z[0], z[1] = re, im in one 64-bit store (STRD; GCC stores the words one by one otherwise).
 * Not sm_store_pair's asm: here GCC folds the constant offsets into the STRDs themselves, which
 * the asm's plain register address would not (+0.14 M instructions per second of audio). */
static inline void store_pair(int32_t *z, int32_t re, int32_t im) {
    const uint64_t v = (uint64_t)(uint32_t)re | (uint64_t)(uint32_t)im << 32; /* little-endian */
    memcpy(z, &v, 8);
}

/* Stages `half` and `2 * half` of the FFT in one pass over the data: four points in registers,
 * three twiddles (read in order from `tw`, sm_fft_pass_twiddles), the same butterflies on the
 * same values as the reference's stage-by-stage loop, with half the loads and stores. The points
 * are read from `src` and written to `z` (the same array but for the first pass). Inlined with a
 * constant `half`, so the four points sit at immediate offsets from one pointer. */
static inline __attribute__((always_inline)) const int32_t *fft_pass2(const int32_t *src,
                                                                      int32_t *z, const int half,
                                                                      const int32_t *tw) {
    for (int k = 0; k < half; k++, tw += 6) {
        const int32_t w1r = tw[0], w1i = tw[1], w2r = tw[2], w2i = tw[3], w3r = tw[4],
                      w3i = tw[5];
        const int32_t *s = &src[2 * k];
        int32_t *p = &z[2 * k];
        for (int b = 0; b < SM_M / (4 * half); b++, s += 8 * half, p += 8 * half) {
            int32_t r0 = s[0], i0 = s[1], r1 = s[2 * half], i1 = s[2 * half + 1];
            int32_t r2 = s[4 * half], i2 = s[4 * half + 1];
            int32_t r3 = s[6 * half], i3 = s[6 * half + 1];
            SM_BUTTERFLY(r0, i0, r1, i1, w1r, w1i);
            SM_BUTTERFLY(r2, i2, r3, i3, w1r, w1i);
            SM_BUTTERFLY(r0, i0, r2, i2, w2r, w2i);
            SM_BUTTERFLY(r1, i1, r3, i3, w3r, w3i);
            store_pair(&p[0], r0, i0);
            store_pair(&p[2 * half], r1, i1);
            store_pair(&p[4 * half], r2, i2);
            store_pair(&p[6 * half], r3, i3);
        }
    }
    return tw;
}

/* Radix-2 decimation-in-time FFT of SM_M points, interleaved (re, im), on bit-reversed input,
 * every stage halved (the result is DFT / SM_M): one single stage first when log2(SM_M) is odd,
 * then the stages two at a time. The first stage reads `x` and writes `z`, which the others
 * transform in place: `x` keeps its zero padding from frame to frame, never rewritten. */
static void fft_q31(const int32_t *x, int32_t *z) {
    const int32_t *src = x;
#if SM_LOG2_M % 2
    for (int i = 0; i < 2 * SM_M; i += 4) { /* the single stage: twiddle W^0 */
        int32_t ar = x[i], ai = x[i + 1], br = x[i + 2], bi = x[i + 3];
        SM_BUTTERFLY(ar, ai, br, bi, sm_twiddle_re_q31[0], sm_twiddle_im_q31[0]);
        z[i] = ar, z[i + 1] = ai, z[i + 2] = br, z[i + 3] = bi;
    }
    src = z;
#define SM_FIRST_HALF 2
#else
#define SM_FIRST_HALF 1
#endif
    const int32_t *tw = sm_fft_pass_twiddles;
#define SM_PASS(h)                           \
    if ((h) < SM_M) {                        \
        tw = fft_pass2(src, z, (h), tw);     \
        src = z;                             \
    }
    SM_PASS(SM_FIRST_HALF);
    SM_PASS(SM_FIRST_HALF * 4);
    SM_PASS(SM_FIRST_HALF * 16);
    SM_PASS(SM_FIRST_HALF * 64);
    SM_PASS(SM_FIRST_HALF * 256);
#undef SM_PASS
    (void)tw, (void)src;
}

/* log2(v) in Q16 for v > 0: the MSB's position plus a table of log2(1 + i/256), interpolated
 * (the reference's ilog2_q16), in 32-bit steps: the normalised mantissa fits a word, and the
 * interpolation product is below 2^31 (table steps < 2^9 times a 22-bit remainder). */
static int32_t ilog2_q16(uint64_t v) {
    const uint32_t vh = (uint32_t)(v >> 32), vl = (uint32_t)v;
    int e;
    uint32_t top; /* v scaled so that its MSB is bit 30 */
    if (vh) {
        e = 63 - __builtin_clz(vh);
        top = (uint32_t)(v >> (e - 30));
    } else {
        e = 31 - __builtin_clz(vl);
        top = e >= 30 ? vl >> (e - 30) : vl << (30 - e);
    }
    const int shift = 30 - SM_LOG2_TABLE_BITS;
    const uint32_t frac = top - (1u << 30), idx = frac >> shift, rem = frac & ((1u << shift) - 1);
    const uint32_t lo = sm_log2_q16[idx], step = sm_log2_q16[idx + 1] - lo;
    return (e << SM_LOG2_FRAC_BITS) + (int32_t)(lo + ((step * rem + (1u << (shift - 1))) >> shift));
}

/* round(log2 * ln 2) to Q(SM_LOG_FRAC_BITS), saturated: (x + 2^(S-1)) >> S of the 64-bit product
 * with S = SM_LOG_SHIFT. For S >= 33 that is (high word + 2^(S-33)) >> (S-32): the low word
 * cannot carry into the result (one SMULL, an add and a shift). */
#define SM_LOG_SHIFT (SM_LOG2_FRAC_BITS + 30 - SM_LOG_FRAC_BITS)
static int16_t log_to_q(int32_t log2) {
#if SM_LOG_SHIFT >= 33
    const int32_t high = (int32_t)(((int64_t)log2 * SM_LN2_Q30) >> 32);
    return sat16((high + (1 << (SM_LOG_SHIFT - 33))) >> (SM_LOG_SHIFT - 32));
#else /* (x + 2^(S-1)) >> S in 64 bits */
    return sat16(((int64_t)log2 * SM_LN2_Q30 + ((int64_t)1 << (SM_LOG_SHIFT - 1))) >> SM_LOG_SHIFT);
#endif
}

/* Power of one bin: (re^2 + im^2) >> SM_POWER_SHIFT (two multiply-accumulates into 64 bits). */
#define SM_POWER(k, x_re, x_im) \
    (power[k] = (uint64_t)((int64_t)(x_re) * (x_re) + (int64_t)(x_im) * (x_im)) >> SM_POWER_SHIFT)

/* Bin k of the split from Z[a] and Z[c] = Z[M - k] (the general form: k = 0, M/2 and M). */
static inline void split_bin(const int32_t *z, int k, int a, int c, uint64_t *power) {
    const int32_t ar = z[2 * a], ai = z[2 * a + 1], cr = z[2 * c], ci = z[2 * c + 1];
    int32_t t_re, t_im;
    SM_HALF_PRODUCT(t_re, t_im, ai + ci, cr - ar, sm_twiddle_re_q31[k], sm_twiddle_im_q31[k]);
    SM_POWER(k, ((ar + cr) >> 1) + t_re, ((ai - ci) >> 1) + t_im);
}

/* Windows the frame that starts at ring[start] and wraps at SM_WIN_LENGTH into the FFT's input
 * `in`, each sample at its bit-reversed position (bitrev is its own inverse): in[m] = s[2m] +
 * i s[2m+1] for frame samples s; int16 * Q15 fits int32, and so does the rounding term
 * (|s| <= 2^30). A pair of samples is one load, its weights and place one more
 * (sm_window_pairs), its result one store; a pair that straddles the wrap is put together by
 * hand. The zero padding (the places of m >= (SM_WIN_LENGTH + 1) / 2) is never written: `in`
 * holds zeros there from .bss, and nothing else may write it. */
static void window_ring(const int16_t *ring, int32_t start, int32_t *in) {
    const int32_t n1 = SM_WIN_LENGTH - start; /* samples before the wrap */
    const uint32_t *e = sm_window_pairs; /* pair m's entry: e = sm_window_pairs + 2m */
    const uint32_t *const wrap = sm_window_pairs + 2 * (n1 / 2), *const end =
        sm_window_pairs + 2 * (SM_WIN_LENGTH / 2);
#define SM_WINDOW_PAIR(f)                                                     \
    do {                                                                      \
        uint32_t w_, at_;                                                     \
        sm_load_pair_next(&e, &w_, &at_);                                     \
        sm_store_pair((int32_t *)((char *)in + at_),                          \
                      sm_smlabb((f), w_, SM_WINDOW_ROUND) >> SM_WINDOW_SHIFT, \
                      sm_smlatt((f), w_, SM_WINDOW_ROUND) >> SM_WINDOW_SHIFT); \
    } while (0)
    const int16_t *r = &ring[start];
    while (e < wrap) { /* pairs before the wrap */
        uint32_t f;
        memcpy(&f, r, 4);
        r += 2;
        SM_WINDOW_PAIR(f);
    }
    if (n1 % 2 && e < end) { /* the pair across the wrap (little-endian halves) */
        const uint32_t f = (uint16_t)ring[SM_WIN_LENGTH - 1] | (uint32_t)(uint16_t)ring[0] << 16;
        SM_WINDOW_PAIR(f);
    }
    if (e < end) /* pairs after it: frame sample 2m is ring[2m - n1] */
        r = &ring[(e - sm_window_pairs) - n1];
    while (e < end) {
        uint32_t f;
        memcpy(&f, r, 4);
        r += 2;
        SM_WINDOW_PAIR(f);
    }
#undef SM_WINDOW_PAIR
#if SM_WIN_LENGTH % 2
    const int16_t last = ring[start ? start - 1 : SM_WIN_LENGTH - 1]; /* frame sample WIN - 1 */
    in[2 * sm_bitrev[SM_WIN_LENGTH / 2]] =
        (last * sm_window_q15[SM_WIN_LENGTH - 1] + SM_WINDOW_ROUND) >> SM_WINDOW_SHIFT;
    in[2 * sm_bitrev[SM_WIN_LENGTH / 2] + 1] = 0;
#endif
}

/* The features of the frame that starts at ring[start] (see window_ring). */
static void frame_ring(const int16_t *ring, int32_t start, int16_t *mel) {
    /* the windowed frame (its zero padding stays from .bss) and the FFT's output; 8-aligned for
     * the 64-bit accesses */
    static int32_t x[2 * SM_M] __attribute__((aligned(8)));
    static int32_t z[2 * SM_M] __attribute__((aligned(8)));
    static uint64_t power[SM_N_MEL_BINS];
    window_ring(ring, start, x);
    fft_q31(x, z);
    /* the split: X[k] = E/2 + W_N^k D/2, E = Z[k] + conj(Z[M-k]), D = -i (Z[k] - conj(Z[M-k])).
     * Bins k and M - k share Z[k] and Z[M-k]: E and D of the second are conj(E) and conj(D),
     * and W^(M-k) = -conj(W^k) exactly (the table is built symmetric), so one twiddle serves
     * both, its imaginary product is the same, and its real one is hi(-D_re W_re) + hi(D_im W_im)
     * (the reference's products on the table's own values, to the bit). */
    split_bin(z, 0, 0, 0, power);
    split_bin(z, SM_M / 2, SM_M / 2, SM_M / 2, power);
    split_bin(z, SM_M, 0, 0, power);
    for (int k = 1; k < SM_M / 2; k++) {
        const int32_t ar = z[2 * k], ai = z[2 * k + 1];
        const int32_t cr = z[2 * (SM_M - k)], ci = z[2 * (SM_M - k) + 1];
        const int32_t e_re = ar + cr, e_im = ai - ci, d_re = ai + ci, d_im = cr - ar;
        const int32_t wr = sm_twiddle_re_q31[k], wi = sm_twiddle_im_q31[k];
        int32_t t_re, t_im;
        SM_HALF_PRODUCT(t_re, t_im, d_re, d_im, wr, wi);
        SM_POWER(k, (e_re >> 1) + t_re, (e_im >> 1) + t_im);
        const int32_t u_re = sm_mlahr(sm_mlshr(0, d_re, wr), d_im, wi);
        SM_POWER(SM_M - k, (e_re >> 1) + u_re, ((-e_im) >> 1) + t_im);
    }
    for (int m = 0; m < SM_N_MELS; m++) {
        /* sum of P * w over the band's bins, as low-word products into 64 bits (UMLAL) plus
         * high-word products into 32 (MLA; the sum stays below 2^63: check_layout) */
        uint64_t acc = (uint64_t)SM_FLOOR_Q;
        uint32_t acc_hi = 0;
        const uint16_t *w = &sm_mel_weights[sm_mel_offset[m]];
        const uint64_t *pw = &power[sm_mel_first[m]];
#pragma GCC unroll 2
        for (int k = 0; k < sm_mel_count[m]; k++) {
            acc = sm_umlal(acc, (uint32_t)pw[k], w[k]);
            acc_hi += (uint32_t)(pw[k] >> 32) * w[k];
        }
        acc += (uint64_t)acc_hi << 32;
        mel[m] = log_to_q(ilog2_q16(acc) - (SM_MEL_SCALE_LOG2 << SM_LOG2_FRAC_BITS));
    }
}

void sm_frontend_frame(const int16_t *frame, int16_t *mel) { frame_ring(frame, 0, mel); }

void sm_frontend_reset(sm_frontend_t *s) { s->start = 0, s->fill = 0; }

/* The samples wait in a ring of one frame: a hop moves its start instead of moving the samples
 * (instead of a memmove of SM_WIN_LENGTH - SM_HOP_LENGTH samples a frame). */
int32_t sm_frontend_push(sm_frontend_t *s, const int16_t *pcm, int32_t n, int16_t *out) {
    int32_t frames = 0;
    while (n > 0) {
        int32_t at = s->start + s->fill; /* where the next sample goes */
        if (at >= SM_WIN_LENGTH) at -= SM_WIN_LENGTH;
        int32_t take = SM_WIN_LENGTH - s->fill; /* to the frame's end, */
        if (take > SM_WIN_LENGTH - at) take = SM_WIN_LENGTH - at; /* the ring's end */
        if (take > n) take = n; /* or the input's */
        memcpy(&s->window[at], pcm, (size_t)take * sizeof(int16_t));
        s->fill += take;
        pcm += take;
        n -= take;
        if (s->fill == SM_WIN_LENGTH) {
            frame_ring(s->window, s->start, &out[frames * SM_N_MELS]);
            frames++;
            s->start += SM_HOP_LENGTH;
            if (s->start >= SM_WIN_LENGTH) s->start -= SM_WIN_LENGTH;
            s->fill -= SM_HOP_LENGTH;
        }
    }
    return frames;
}
