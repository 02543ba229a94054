/* int8 kernels of the operators the exporter emits, with TensorFlow Lite's integer arithmetic
 * (the reference kernels TensorFlow Lite Micro runs: int32 accumulators, per-channel
 * requantisation by MultiplyByQuantizedMultiplier, zero points, activation clamps), written from
 * the arithmetic its sources document, so that the generated model (sm_model.c) is bit-exact with
 * TFLite Micro. Tensors are NHWC; the multipliers and shifts are computed at export exactly as
 * TFLite Micro computes them at Prepare (firmware_export/codegen.py). */
#ifndef SM_KERNELS_H
#define SM_KERNELS_H

#include <stdint.h>

typedef struct {
    int32_t in_h, in_w, in_c, out_h, out_w, out_c, k_h, k_w;
    int32_t stride_h, stride_w, dil_h, dil_w, pad_h, pad_w, depth_multiplier;
    int32_t in_offset, out_offset, act_min, act_max;
} sm_conv_t;

/* CONV_2D, per-channel: weights [out_c][k_h][k_w][in_c]; bias may be 0. */
void sm_conv2d(const sm_conv_t *p, const int8_t *in, const int8_t *w, const int32_t *bias,
               const int32_t *mult, const int32_t *shift, int8_t *out);
/* DEPTHWISE_CONV_2D, per-channel: weights [1][k_h][k_w][out_c]. */
void sm_depthwise_conv2d(const sm_conv_t *p, const int8_t *in, const int8_t *w,
                         const int32_t *bias, const int32_t *mult, const int32_t *shift,
                         int8_t *out);
/* The same two without padding (every tap inside the input), the input offset folded into
 * `bias_eff` at export (bias + in_offset * sum of the channel's weights): each output is a bias
 * plus plain int8 dot products, the same integer as the general form's. */
void sm_conv2d_valid(const sm_conv_t *p, const int8_t *in, const int8_t *w,
                     const int32_t *bias_eff, const int32_t *mult, const int32_t *shift,
                     int8_t *out);
void sm_depthwise_conv2d_valid(const sm_conv_t *p, const int8_t *in, const int8_t *w,
                               const int32_t *bias_eff, const int32_t *mult,
                               const int32_t *shift, int8_t *out);
/* The same two for the layers the export finds a fast form for (codegen.py, `_conv`): a 1x1
 * CONV_2D with stride 1 and a DEPTHWISE_CONV_2D with depth multiplier 1, unpadded, channels in
 * multiples of 4, right-shifting requantisation (`right[c]` = -shift >= 1), and accumulators
 * that provably stay where the short requantisation is exact.
 * Weights are int16 in the packed order the DSP's SXTB16 gives the inputs: channels (or inputs)
 * 4j..4j+3 as the lane pairs (4j, 4j+2), (4j+1, 4j+3). 1x1: [out_c/4][in_c/4][4 outputs][4];
 * depthwise: [k_h][k_w][out_c/4][4]. Each output is the same integer as the general form's. */
void sm_conv2d_1x1_s16(const sm_conv_t *p, const int8_t *in, const int16_t *w,
                       const int32_t *bias_eff, const int32_t *mult, const int32_t *right,
                       int8_t *out);
void sm_depthwise_conv2d_s16(const sm_conv_t *p, const int8_t *in, const int16_t *w,
                             const int32_t *bias_eff, const int32_t *mult,
                             const int32_t *right, int8_t *out);
/* sum of a[i] * b[i] over n int8 pairs (DSP SIMD where the core has it). */
int32_t sm_dot_s8(const int8_t *a, const int8_t *b, int32_t n);

/* FULLY_CONNECTED, per-tensor: weights [units][depth]; bias may be 0. */
void sm_fully_connected(int32_t batches, int32_t depth, int32_t units, const int8_t *in,
                        const int8_t *w, const int32_t *bias, int32_t in_offset, int32_t w_offset,
                        int32_t out_offset, int32_t mult, int32_t shift, int32_t act_min,
                        int32_t act_max, int8_t *out);

typedef struct {
    int32_t in1_offset, in2_offset, out_offset, left_shift;
    int32_t in1_mult, in1_shift, in2_mult, in2_shift, out_mult, out_shift, act_min, act_max;
} sm_add_t;

/* ADD: n elements; a second input of one element is broadcast. */
void sm_add(const sm_add_t *p, int32_t n, const int8_t *a, const int8_t *b, int32_t n_b,
            int8_t *out);
/* ADD with each input's scaled value read from a table of 2 x 256 int32 (`lut`), which
 * sm_add_lut_init fills once with TFLite's arithmetic: the same integers as sm_add. */
void sm_add_lut_init(const sm_add_t *p, int32_t *lut);
void sm_add_lut(const sm_add_t *p, const int32_t *lut, int32_t n, const int8_t *a,
                const int8_t *b, int32_t n_b, int8_t *out);
/* MUL: n elements; a second input of one element is broadcast. */
void sm_mul(int32_t n, const int8_t *a, const int8_t *b, int32_t n_b, int32_t in1_offset,
            int32_t in2_offset, int32_t out_offset, int32_t mult, int32_t shift, int32_t act_min,
            int32_t act_max, int8_t *out);
/* AVERAGE_POOL_2D (VALID or SAME padding; the count is of the positions inside). */
void sm_average_pool(int32_t in_h, int32_t in_w, int32_t c, int32_t out_h, int32_t out_w,
                     int32_t k_h, int32_t k_w, int32_t stride_h, int32_t stride_w, int32_t pad_h,
                     int32_t pad_w, int32_t act_min, int32_t act_max, const int8_t *in,
                     int8_t *out);
/* An element-wise int8 -> int8 function by its 256-entry table (TANH: the table is TFLite
 * Micro's own output for every input, computed at export). */
void sm_lookup(int32_t n, const int8_t *in, const int8_t *table, int8_t *out);
/* CONCATENATION of inputs with the output's quantization: `outer` runs of each input's
 * `inner[i]` bytes. */
void sm_concat(int32_t n_inputs, const int8_t *const *in, const int32_t *inner, int32_t outer,
               int8_t *out);

/* TFLite's fixed-point helpers (exposed for the tests). */
int32_t sm_mbqm(int32_t x, int32_t multiplier, int32_t shift);
int32_t sm_srdhm(int32_t a, int32_t b);
int32_t sm_rdbpot(int32_t x, int32_t exponent);

#endif
