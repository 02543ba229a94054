/* The application protocol's frames: see sm_proto.h. */
#include "sm_proto.h"

#include <string.h>

/* Bit by bit (no table): 8 shifts per byte keep 1 KiB of flash free, and a STREAM frame's CRC
 * costs about 2 % of the masking its chunk asks for. */
uint32_t sm_crc32(uint32_t crc, const uint8_t *data, int32_t n) {
    crc = ~crc;
    for (int32_t i = 0; i < n; i++) {
        crc ^= data[i];
        for (int b = 0; b < 8; b++) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
    }
    return ~crc;
}

void sm_parser_reset(sm_parser_t *p) {
    p->have = 0;
    p->consumed = 0;
    p->errors = 0;
}

static uint32_t le16(const uint8_t *b) { return (uint32_t)b[0] | (uint32_t)b[1] << 8; }

static uint32_t le32(const uint8_t *b) { return le16(b) | le16(b + 2) << 16; }

/* Drop the buffer's first byte and keep what follows from the next possible magic on: the kept
 * bytes are checked again, so a frame that starts inside a dropped one is still found (as the
 * host's parser finds it). */
static void resync(sm_parser_t *p) {
    int32_t at = 1;
    while (at < p->have && !(p->buf[at] == 'S' && (at + 1 == p->have || p->buf[at + 1] == 'M')))
        at++;
    memmove(p->buf, p->buf + at, (size_t)(p->have - at));
    p->have -= at;
}

/* Drops the frame returned last, keeping what followed it. */
static void settle(sm_parser_t *p) {
    if (p->consumed) {
        memmove(p->buf, p->buf + p->consumed, (size_t)(p->have - p->consumed));
        p->have -= p->consumed;
        p->consumed = 0;
    }
}

static int scan(sm_parser_t *p, sm_frame_t *frame) {
    for (;;) {
        if (p->have >= 1 && p->buf[0] != 'S') {
            resync(p);
            continue;
        }
        if (p->have >= 2 && p->buf[1] != 'M') {
            resync(p);
            continue;
        }
        if (p->have < SM_PROTO_HEADER) return 0;
        const uint32_t length = le16(p->buf + 6);
        if (p->buf[2] != SM_PROTO_VERSION || length > SM_PROTO_MAX_PAYLOAD) {
            p->errors++;
            resync(p);
            continue;
        }
        const int32_t end = SM_PROTO_OVERHEAD + (int32_t)length;
        if (p->have < end) return 0;
        if (sm_crc32(0, p->buf, end - 4) != le32(p->buf + end - 4)) {
            p->errors++;
            resync(p);
            continue;
        }
        frame->type = p->buf[3];
        frame->seq = (uint16_t)le16(p->buf + 4);
        frame->length = (uint16_t)length;
        frame->payload = p->buf + SM_PROTO_HEADER;
        p->consumed = end; /* the caller reads the payload before the next call */
        return 1;
    }
}

int sm_parser_feed(sm_parser_t *p, uint8_t byte, sm_frame_t *frame) {
    settle(p);
    /* cannot be full here: a buffer that holds a whole frame has returned or dropped it */
    if (p->have >= (int32_t)sizeof p->buf) p->have = 0;
    p->buf[p->have++] = byte;
    return scan(p, frame);
}

int sm_parser_poll(sm_parser_t *p, sm_frame_t *frame) {
    settle(p);
    return scan(p, frame);
}

int32_t sm_frame_encode(uint8_t *out, uint8_t type, uint16_t seq, const uint8_t *payload,
                        int32_t n) {
    out[0] = 'S';
    out[1] = 'M';
    out[2] = SM_PROTO_VERSION;
    out[3] = type;
    out[4] = (uint8_t)seq;
    out[5] = (uint8_t)(seq >> 8);
    out[6] = (uint8_t)n;
    out[7] = (uint8_t)(n >> 8);
    if (payload != out + SM_PROTO_HEADER && n) memmove(out + SM_PROTO_HEADER, payload, (size_t)n);
    const uint32_t crc = sm_crc32(0, out, SM_PROTO_HEADER + n);
    for (int i = 0; i < 4; i++) out[SM_PROTO_HEADER + n + i] = (uint8_t)(crc >> (8 * i));
    return SM_PROTO_OVERHEAD + n;
}
