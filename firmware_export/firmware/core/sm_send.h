/* What the device does to the features before they are gated and sent (speechmask.device.send),
 * bit-exact with its integer reference: the streaming per-band normalisation (of the means, and
 * with SM_SEND_NORM_SCALE of the deviations), then the utterance's frequency warp, then with
 * SM_SEND_LEVEL the per-frame level removal. Constants and tables: speechmask_gates.h
 * (`speechmask export`). */
#ifndef SM_SEND_H
#define SM_SEND_H

#include <stdint.h>

#include "speechmask_gates.h"

typedef struct {
    int32_t mean[SM_N_MELS]; /* running band means, Q(SM_LOG_FRAC_BITS + SM_SEND_NORM_FRAC_BITS) */
#if SM_SEND_NORM_SCALE
    int32_t dev[SM_N_MELS];  /* running mean absolute deviations, in the same units */
#endif
    int32_t count;           /* frames seen, saturating at SM_SEND_NORM_FRAMES */
    int32_t level;           /* this utterance's warp level, -SM_SEND_WARP_LEVELS..LEVELS */
} sm_send_t;

/* At each utterance start: clears the means and sets the warp level (0 when warping is off).
 * Returns -1, changing nothing, for a level outside the range. */
int sm_send_reset(sm_send_t *s, int32_t level);

/* One frame (SM_N_MELS int16 features) -> what is sent of it, before gating. */
void sm_send_frame(sm_send_t *s, const int16_t *x, int16_t *out);

#endif
