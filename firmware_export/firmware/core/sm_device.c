/* See sm_device.h. The model's inputs are quantized as speechmask.device.int8.quantize does, in
 * float32: the frames from Q(SM_LOG_FRAC_BITS) to float (exact: a power of two), divided by the
 * input's scale, rounded half to even (rintf, the default rounding mode), plus its zero point. */
#include "sm_device.h"

#include <math.h>
#include <string.h>

#include "sm_model.h"

#if SM_MODEL_EXPORT_ID_U64 != SM_EXPORT_ID_U64 || SM_MODEL_CONTRACT_VERSION != SM_CONTRACT_VERSION
#error "sm_model.c/.h come from another export (or contract) than speechmask_gates.h: build from one export folder"
#endif

static int8_t quantize(float x, float scale, int32_t zero_point) {
    const float q = rintf(x / scale) + (float)zero_point;
    return (int8_t)(q < -128.0f ? -128 : (q > 127.0f ? 127 : q));
}

int sm_device_reset(sm_device_t *d, int32_t warp_level) {
    if (sm_send_reset(&d->send, warp_level) != 0) return -1;
    sm_frontend_reset(&d->frontend);
    d->frames = 0;
    d->segments = 0;
    memset(d->fed_back, 0, sizeof d->fed_back);
#if SM_N_HISTORIES > 0
    int8_t *h = d->history;
    for (int k = 0; k < SM_N_HISTORIES; k++) { /* "zero" in each history's int8 units */
        const int32_t bytes = sm_history_frames[k] * sm_history_channels[k];
        memset(h, sm_history_zero_point[k], (size_t)bytes);
        h += bytes;
    }
#endif
    return 0;
}

static void call(sm_device_t *d, uint8_t *gates) {
    static int8_t frames[SM_FRAMES_PER_SEGMENT * SM_N_MELS], state[SM_STATE_WIDTH];
    static int8_t tanh_logit[SM_BAND_GROUPS], news[SM_NEW_BYTES];
    const int8_t *in[SM_MODEL_N_INPUTS];
    int8_t *out[SM_MODEL_N_OUTPUTS];
    const float unit = 1.0f / (float)(1 << SM_LOG_FRAC_BITS);
    for (int t = 0; t < SM_FRAMES_PER_SEGMENT; t++)
        for (int b = 0; b < SM_N_MELS; b++)
            frames[t * SM_N_MELS + b] =
                quantize((float)d->raw[t][b] * unit, SM_FRAMES_SCALE, SM_FRAMES_ZERO_POINT);
    for (int i = 0; i < SM_STATE_WIDTH; i++) /* the gates sent, newest first (0 without feedback) */
        state[i] = quantize(SM_FEEDBACK > 0 ? (float)d->fed_back[i / SM_BAND_GROUPS]
                                                                 [i % SM_BAND_GROUPS] : 0.0f,
                            SM_STATE_SCALE, SM_STATE_ZERO_POINT);
    in[SM_FRAMES_INPUT_INDEX] = frames;
    in[SM_STATE_INPUT_INDEX] = state;
    out[SM_TANH_LOGIT_OUTPUT_INDEX] = tanh_logit;
#if SM_N_HISTORIES > 0
    {
        int8_t *h = d->history, *n = news;
        for (int k = 0; k < SM_N_HISTORIES; k++) {
            in[sm_history_input_index[k]] = h;
            out[sm_new_output_index[k]] = n;
            h += sm_history_frames[k] * sm_history_channels[k];
            n += SM_FRAMES_PER_SEGMENT * sm_history_channels[k];
        }
    }
#endif
    sm_model_invoke(in, out);
#if SM_N_HISTORIES > 0
    { /* shift each history by the call's new frames (the last `frames` rows of old + new) */
        int8_t *h = d->history;
        const int8_t *n = news;
        for (int k = 0; k < SM_N_HISTORIES; k++) {
            const int32_t c = sm_history_channels[k], keep = sm_history_frames[k];
            const int32_t fresh = SM_FRAMES_PER_SEGMENT < keep ? SM_FRAMES_PER_SEGMENT : keep;
            memmove(h, h + fresh * c, (size_t)((keep - fresh) * c));
            memcpy(h + (keep - fresh) * c, n + (SM_FRAMES_PER_SEGMENT - fresh) * c,
                   (size_t)(fresh * c));
            h += keep * c;
            n += SM_FRAMES_PER_SEGMENT * c;
        }
    }
#endif
    for (int g = 0; g < SM_BAND_GROUPS; g++) gates[g] = tanh_logit[g] > SM_GATE_OPEN_ABOVE;
#if SM_FEEDBACK > 0
    memmove(d->fed_back[1], d->fed_back[0], (SM_FEEDBACK - 1) * SM_BAND_GROUPS);
    memcpy(d->fed_back[0], gates, SM_BAND_GROUPS);
#endif
}

int32_t sm_device_push(sm_device_t *d, const int16_t *pcm, int32_t n, sm_segment_fn segment,
                       void *ctx) {
    int32_t done = 0;
    int16_t frame[SM_FRONTEND_MAX_FRAMES(SM_HOP_LENGTH)][SM_N_MELS];
    for (int32_t at = 0; at < n; at += SM_HOP_LENGTH) { /* a hop at a time: at most one frame */
        const int32_t k = sm_frontend_push(&d->frontend, &pcm[at],
                                           n - at < SM_HOP_LENGTH ? n - at : SM_HOP_LENGTH,
                                           frame[0]);
        for (int32_t f = 0; f < k; f++) {
            memcpy(d->raw[d->frames], frame[f], sizeof frame[f]);
            sm_send_frame(&d->send, frame[f], d->sent[d->frames]);
            if (++d->frames < SM_FRAMES_PER_SEGMENT) continue;
            uint8_t gates[SM_BAND_GROUPS];
            call(d, gates);
            for (int g = 0; g < SM_BAND_GROUPS; g++)
                if (!gates[g])
                    for (int t = 0; t < SM_FRAMES_PER_SEGMENT; t++)
                        for (int b = sm_band_edges[2 * g]; b < sm_band_edges[2 * g + 1]; b++)
                            d->sent[t][b] = 0;
            segment(ctx, gates, &d->sent[0][0]);
            d->frames = 0;
            d->segments++;
            done++;
        }
    }
    return done;
}
