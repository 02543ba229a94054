/* The device's whole streaming job, bit-exact with the references: int16 PCM in; per segment,
 * the gates the generated int8 model decides in its closed loop (its own histories and the gates
 * sent fed back, as speechmask.device.DeviceLoop keeps them) and the sent features (the send
 * steps' output) of the band groups whose gate is open. What leaves the device is exactly these:
 * the serial protocol packs them. No allocation; the state is the struct below. */
#ifndef SM_DEVICE_H
#define SM_DEVICE_H

#include <stdint.h>

#include "sm_frontend.h"
#include "sm_send.h"
#include "speechmask_gates.h"

typedef struct {
    sm_frontend_t frontend;
    sm_send_t send;
    int16_t raw[SM_FRAMES_PER_SEGMENT][SM_N_MELS];  /* the segment's front-end features */
    int16_t sent[SM_FRAMES_PER_SEGMENT][SM_N_MELS]; /* and what the send steps make of them */
    int32_t frames;                                 /* frames of the segment so far */
    int8_t history[SM_HISTORY_BYTES];               /* each layer's look-back, int8 */
    uint8_t fed_back[SM_FEEDBACK > 0 ? SM_FEEDBACK : 1][SM_BAND_GROUPS]; /* newest first */
    int32_t segments;
} sm_device_t;

/* Called once per completed segment: its gates (1 = sent) and its sent features, row-major
 * SM_FRAMES_PER_SEGMENT x SM_N_MELS, zero in the band groups whose gate is closed. */
typedef void (*sm_segment_fn)(void *ctx, const uint8_t *gates, const int16_t *features);

/* At each utterance start: the warp level this utterance uses (-1 for an invalid level). */
int sm_device_reset(sm_device_t *d, int32_t warp_level);

/* Streams n PCM samples; calls `segment` for each segment they complete; returns how many. */
int32_t sm_device_push(sm_device_t *d, const int16_t *pcm, int32_t n, sm_segment_fn segment,
                       void *ctx);

#endif
