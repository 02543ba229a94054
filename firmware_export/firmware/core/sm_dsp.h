/* Rounded high-word multiplies: the Cortex-M7's SMMULR, SMMLAR and SMMLSR (DSP extension), one
 * instruction each, with a portable C equivalent elsewhere (the host build the tests check
 * against the Python reference). GCC does not emit these from C (it builds the 64-bit product
 * and rounds it in 4-6 instructions), hence the inline assembly. Exact definitions:
 *   sm_mulhr(a, b)      = (a * b + 2^31) >> 32
 *   sm_mlahr(acc, a, b) = ((acc << 32) + a * b + 2^31) >> 32 = acc + sm_mulhr(a, b)
 *   sm_mlshr(acc, a, b) = ((acc << 32) - a * b + 2^31) >> 32 = acc + ((-(a * b) + 2^31) >> 32)
 * (64-bit products, arithmetic shifts: speechmask/features_int.py's `_hi`). */
#ifndef SM_DSP_H
#define SM_DSP_H

#include <stdint.h>

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
static inline int32_t sm_mulhr(int32_t a, int32_t b) {
    int32_t r;
    __asm__("smmulr %0, %1, %2" : "=r"(r) : "r"(a), "r"(b));
    return r;
}
static inline int32_t sm_mlahr(int32_t acc, int32_t a, int32_t b) {
    int32_t r;
    __asm__("smmlar %0, %1, %2, %3" : "=r"(r) : "r"(a), "r"(b), "r"(acc));
    return r;
}
static inline int32_t sm_mlshr(int32_t acc, int32_t a, int32_t b) {
    int32_t r;
    __asm__("smmlsr %0, %1, %2, %3" : "=r"(r) : "r"(a), "r"(b), "r"(acc));
    return r;
}
/* acc + a * b, unsigned 32 x 32 into 64 bits: one UMLAL (GCC splits it into four) */
static inline uint64_t sm_umlal(uint64_t acc, uint32_t a, uint32_t b) {
    __asm__("umlal %Q0, %R0, %1, %2" : "+r"(acc) : "r"(a), "r"(b));
    return acc;
}
#else
static inline uint64_t sm_umlal(uint64_t acc, uint32_t a, uint32_t b) {
    return acc + (uint64_t)a * b;
}
static inline int32_t sm_mulhr(int32_t a, int32_t b) {
    return (int32_t)(((int64_t)a * b + ((int64_t)1 << 31)) >> 32);
}
static inline int32_t sm_mlahr(int32_t acc, int32_t a, int32_t b) {
    return acc + sm_mulhr(a, b);
}
static inline int32_t sm_mlshr(int32_t acc, int32_t a, int32_t b) {
    return acc + (int32_t)((-((int64_t)a * b) + ((int64_t)1 << 31)) >> 32);
}
#endif

/* Packed 16-bit arithmetic (the DSP extension's SXTB16, SMLAD, SMLABB, SMLATT; ACLE names), C
 * elsewhere. A word holds two int16 lanes, low and high:
 *   sm_sxtb16(x)      = lanes (int8) byte 0, (int8) byte 2
 *   sm_sxtb16_ror8(x) = lanes (int8) byte 1, (int8) byte 3
 *   sm_smlad(a, b, acc) = acc + lo(a) lo(b) + hi(a) hi(b)
 *   sm_smlabb(a, b, acc) = acc + lo(a) lo(b),   sm_smlatt(a, b, acc) = acc + hi(a) hi(b)
 *   sm_ssat8(v) = v saturated to [-128, 127], sm_ssat16(v) to [-32768, 32767] (SSAT) */
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP && defined(__ARM_FEATURE_SIMD32) && \
    __ARM_FEATURE_SIMD32
#include <arm_acle.h>
static inline uint32_t sm_sxtb16(uint32_t x) { return __sxtb16(x); }
static inline uint32_t sm_sxtb16_ror8(uint32_t x) { /* GCC does not fold the rotation in */
    uint32_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(x));
    return r;
}
static inline int32_t sm_smlad(uint32_t a, uint32_t b, int32_t acc) { return __smlad(a, b, acc); }
static inline int32_t sm_smlabb(uint32_t a, uint32_t b, int32_t acc) {
    return __smlabb((int32_t)a, (int32_t)b, acc);
}
static inline int32_t sm_smlatt(uint32_t a, uint32_t b, int32_t acc) {
    return __smlatt((int32_t)a, (int32_t)b, acc);
}
static inline int32_t sm_ssat8(int32_t v) { return __ssat(v, 8); }
static inline int32_t sm_ssat16(int32_t v) { return __ssat(v, 16); }
#else
static inline int32_t sm_lo16(uint32_t a) { return (int16_t)(a & 0xffffu); }
static inline int32_t sm_hi16(uint32_t a) { return (int16_t)(a >> 16); }
static inline uint32_t sm_sxtb16(uint32_t x) {
    return ((uint32_t)(int32_t)(int8_t)(x & 0xffu) & 0xffffu) |
           ((uint32_t)(int32_t)(int8_t)((x >> 16) & 0xffu) << 16);
}
static inline uint32_t sm_sxtb16_ror8(uint32_t x) { return sm_sxtb16((x >> 8) | (x << 24)); }
static inline int32_t sm_smlad(uint32_t a, uint32_t b, int32_t acc) {
    return acc + sm_lo16(a) * sm_lo16(b) + sm_hi16(a) * sm_hi16(b);
}
static inline int32_t sm_smlabb(uint32_t a, uint32_t b, int32_t acc) {
    return acc + sm_lo16(a) * sm_lo16(b);
}
static inline int32_t sm_smlatt(uint32_t a, uint32_t b, int32_t acc) {
    return acc + sm_hi16(a) * sm_hi16(b);
}
static inline int32_t sm_ssat8(int32_t v) { return v < -128 ? -128 : (v > 127 ? 127 : v); }
static inline int32_t sm_ssat16(int32_t v) {
    return v < -32768 ? -32768 : (v > 32767 ? 32767 : v);
}
#endif

/* Two words at *p (word-aligned) in one LDRD that also steps *p past them, and two words stored
 * at p in one STRD, on Thumb-2: GCC splits such pairs into two LDR / STR when the address comes
 * from a table (the window's bit-reversed places), hence the asm. The "m" operands tell the
 * compiler which memory moves, without clobbering all of it. */
typedef struct { uint32_t w[2]; } sm_pair_t;
#if defined(__thumb2__)
static inline void sm_load_pair_next(const uint32_t **p, uint32_t *a, uint32_t *b) {
    __asm__("ldrd %0, %1, [%2], #8"
            : "=&r"(*a), "=&r"(*b), "+r"(*p) : "m"(*(const sm_pair_t *)*p));
}
static inline void sm_store_pair(int32_t *p, int32_t a, int32_t b) {
    __asm__("strd %1, %2, [%3]" : "=m"(*(sm_pair_t *)p) : "r"(a), "r"(b), "r"(p));
}
#else
static inline void sm_load_pair_next(const uint32_t **p, uint32_t *a, uint32_t *b) {
    *a = (*p)[0], *b = (*p)[1], *p += 2;
}
static inline void sm_store_pair(int32_t *p, int32_t a, int32_t b) { p[0] = a, p[1] = b; }
#endif

#endif
