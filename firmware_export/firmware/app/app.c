/* The application firmware: the speechmask device job behind the serial protocol (sm_proto.h).
 * It answers INFO, STATS, STREAM_BEGIN and STREAM on the board's serial port; a STREAM chunk of
 * int16 PCM goes through sm_device_push and the reply carries, per completed segment, its gates
 * and the features of its open band groups (exactly what leaves the device), with the counter
 * ticks the chunk took (instructions under QEMU -icount, DWT cycles on the STM32H7). MODEL_BEGIN,
 * MODEL_DATA and MODEL_COMMIT upload a model blob (model.blob of the export) into a reserved
 * region; it becomes the active model only once its CRC and export id check out. */
#include <stdio.h>
#include <string.h>

#include "sm_board.h"
#include "sm_device.h"
#include "sm_model.h"
#include "sm_proto.h"

#define FIRMWARE_VERSION "0.1.0"
#define SEGMENT_BYTES (SM_BAND_GROUPS + 2 * SM_FRAMES_PER_SEGMENT * SM_N_MELS) /* all open */
#define STREAM_HEAD 11 /* status, ticks u32, per_tick u32, segments u16 */

static sm_parser_t parser;
static sm_device_t device;
static int streaming;
static int16_t pcm[SM_PROTO_MAX_PAYLOAD / 2];
static int32_t max_chunk; /* samples per STREAM frame whose reply always fits a frame */

/* The most segments n new samples can complete: at most n / hop + 1 new frames, after at most
 * frames-per-segment - 1 waiting. */
static int32_t worst_segments(int32_t n) {
    return (n / SM_HOP_LENGTH + SM_FRAMES_PER_SEGMENT) / SM_FRAMES_PER_SEGMENT;
}
static uint8_t tx[SM_PROTO_OVERHEAD + SM_PROTO_MAX_PAYLOAD];
static uint8_t *const body = tx + SM_PROTO_HEADER; /* the reply's payload, built in place */
static int32_t body_len;
static int overflow;
static struct {
    uint32_t frames, utterances, samples, segments, segments_open, max_chunk_ticks;
} stats;

/* The reserved model region a MODEL upload writes: the board's flash sector where it has one
 * (SM_BOARD_FLASH_REGION: the STM32H7, where an uploaded model survives a reset and is used at
 * boot), else RAM here (the emulated boards). The blob must be this export's (sm_model_use), so
 * while the region is rewritten the built-in copy of the same constants is the active model: a
 * failed upload never leaves the firmware without one. */
#ifdef SM_BOARD_FLASH_REGION
#if SM_MODEL_BLOB_BYTES > SM_BOARD_REGION_BYTES
#error "the model blob does not fit the board's model region"
#endif
static const uint8_t *region_ptr(void) { return sm_board_region(SM_MODEL_BLOB_BYTES); }
static int region_erase(void) { return sm_board_region_erase(); }
static int region_program(uint32_t at, const uint8_t *data, uint32_t n) {
    return sm_board_region_program(at, data, n);
}
static int region_finish(void) { return sm_board_region_finish(); }
#else
static uint8_t region[SM_MODEL_BLOB_BYTES] __attribute__((aligned(8)));
static const uint8_t *region_ptr(void) { return region; }
static int region_erase(void) { return memset(region, 0xFF, sizeof region), 0; }
static int region_program(uint32_t at, const uint8_t *data, uint32_t n) {
    return memcpy(region + at, data, n), 0;
}
static int region_finish(void) { return 0; }
#endif
static uint32_t upload_size, upload_crc, upload_have;
static int uploading, region_active;

static void send_reply(const sm_frame_t *req, uint8_t status, int32_t n) {
    body[0] = status;
    const int32_t len = sm_frame_encode(tx, (uint8_t)(req->type | SM_PROTO_REPLY), req->seq, body,
                                        n < 1 ? 1 : n);
    sm_board_serial_write(tx, len);
}

static void put(const void *data, int32_t n) {
    if (body_len + n > SM_PROTO_MAX_PAYLOAD) {
        overflow = 1;
        return;
    }
    memcpy(body + body_len, data, (size_t)n);
    body_len += n;
}

static void put_u32(uint32_t v) {
    const uint8_t b[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    put(b, 4);
}

static void put_text(const char *key, const char *value) {
    char line[96];
    const int n = snprintf(line, sizeof line, "%s=%s\n", key, value);
    if (n > 0 && n < (int)sizeof line) put(line, n);
}

static void put_number(const char *key, long value) {
    char text[24];
    snprintf(text, sizeof text, "%ld", value);
    put_text(key, text);
}

static void on_segment(void *ctx, const uint8_t *gates, const int16_t *features) {
    (void)ctx;
    put(gates, SM_BAND_GROUPS);
    int open = 0;
    for (int g = 0; g < SM_BAND_GROUPS; g++) open |= gates[g];
    stats.segments++;
    stats.segments_open += (uint32_t)open;
    for (int t = 0; t < SM_FRAMES_PER_SEGMENT; t++)
        for (int g = 0; g < SM_BAND_GROUPS; g++)
            if (gates[g])
                for (int b = sm_band_edges[2 * g]; b < sm_band_edges[2 * g + 1]; b++) {
                    const int16_t v = features[t * SM_N_MELS + b];
                    const uint8_t le[2] = {(uint8_t)v, (uint8_t)((uint16_t)v >> 8)};
                    put(le, 2);
                }
}

static void info(const sm_frame_t *req) {
    body_len = 1;
    put_text("firmware", "speechmask-firmware " FIRMWARE_VERSION);
    put_number("protocol", SM_PROTO_VERSION);
    put_number("contract_version", SM_CONTRACT_VERSION);
    put_text("export_id", SM_EXPORT_ID);
    put_number("sample_rate", SM_SAMPLE_RATE);
    put_number("win_length", SM_WIN_LENGTH);
    put_number("hop_length", SM_HOP_LENGTH);
    put_number("n_mels", SM_N_MELS);
    put_number("frames_per_segment", SM_FRAMES_PER_SEGMENT);
    put_number("band_groups", SM_BAND_GROUPS);
    put_number("max_chunk_samples", max_chunk);
    put_number("warp_levels", SM_SEND_WARP_LEVELS);
    put_text("counter", sm_board_counter_unit);
    char crc[12];
    snprintf(crc, sizeof crc, "%08lx", (unsigned long)SM_MODEL_CRC32);
    put_text("model_crc32", crc);
    put_text("model", region_active ? "uploaded" : "built-in");
    put_number("model_blob_bytes", SM_MODEL_BLOB_BYTES);
    put_number("model_arena_bytes", SM_MODEL_ARENA_BYTES);
    put_number("device_state_bytes", (long)sizeof device);
    put_number("stack_used_bytes", (long)sm_board_stack_used());
    send_reply(req, SM_OK, body_len);
}

static void stats_reply(const sm_frame_t *req) {
    body_len = 1;
    put_number("frames", (long)stats.frames);
    put_number("bad_frames", (long)parser.errors);
    put_number("utterances", (long)stats.utterances);
    put_number("samples", (long)stats.samples);
    put_number("segments", (long)stats.segments);
    put_number("segments_open", (long)stats.segments_open);
    put_number("max_chunk_ticks", (long)stats.max_chunk_ticks);
    send_reply(req, SM_OK, body_len);
}

static void stream(const sm_frame_t *req) {
    if (!streaming) {
        send_reply(req, SM_BAD_STATE, 1);
        return;
    }
    if (req->length % 2 || req->length / 2 > max_chunk) { /* refused before any sample is used */
        send_reply(req, SM_BAD_ARGUMENT, 1);
        return;
    }
    const int32_t n = req->length / 2;
    for (int32_t i = 0; i < n; i++)
        pcm[i] = (int16_t)(uint16_t)(req->payload[2 * i] | req->payload[2 * i + 1] << 8);
    body_len = STREAM_HEAD;
    overflow = 0;
    const uint32_t start = sm_board_ticks();
    const int32_t segments = sm_device_push(&device, pcm, n, on_segment, 0);
    const uint32_t ticks = sm_board_elapsed(start);
    stats.samples += (uint32_t)n;
    if (ticks > stats.max_chunk_ticks) stats.max_chunk_ticks = ticks;
    if (overflow) { /* cannot happen: max_chunk leaves room for the worst case */
        send_reply(req, SM_TOO_LARGE, 1);
        return;
    }
    const int32_t end = body_len;
    body_len = 1;
    put_u32(ticks);
    put_u32(sm_board_instructions_per_tick);
    const uint8_t count[2] = {(uint8_t)segments, (uint8_t)(segments >> 8)};
    put(count, 2);
    send_reply(req, SM_OK, end);
}

static uint32_t le32(const uint8_t *b) {
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static void model_begin(const sm_frame_t *req) {
    if (req->length != 8) {
        send_reply(req, SM_BAD_ARGUMENT, 1);
        return;
    }
    const uint32_t size = le32(req->payload);
    if (size != SM_MODEL_BLOB_BYTES) { /* not the size of this export's blob */
        send_reply(req, size > SM_MODEL_BLOB_BYTES ? SM_TOO_LARGE : SM_WRONG_EXPORT, 1);
        return;
    }
    sm_model_use(sm_model_builtin_blob(), SM_MODEL_BLOB_BYTES); /* the same constants */
    region_active = 0;
    uploading = 0;
    upload_have = 0;
    if (region_erase() != 0) {
        send_reply(req, SM_BAD_STATE, 1);
        return;
    }
    upload_size = size;
    upload_crc = le32(req->payload + 4);
    upload_have = 0;
    uploading = 1;
    send_reply(req, SM_OK, 1);
}

/* MODEL_DATA: u32 offset, bytes, in order; a refusal carries the offset expected next, so that
 * the host resumes from there. */
static void model_data(const sm_frame_t *req) {
    const uint32_t n = req->length >= 4 ? req->length - 4u : 0u;
    if (!uploading || req->length < 4 || le32(req->payload) != upload_have ||
        upload_have + n > upload_size) {
        body_len = 1;
        put_u32(upload_have);
        send_reply(req, uploading ? SM_BAD_ARGUMENT : SM_BAD_STATE, body_len);
        return;
    }
    if (region_program(upload_have, req->payload + 4, n) != 0) {
        uploading = 0;
        send_reply(req, SM_BAD_STATE, 1);
        return;
    }
    upload_have += n;
    send_reply(req, SM_OK, 1);
}

static void model_commit(const sm_frame_t *req) {
    if (!uploading || upload_have != upload_size) {
        send_reply(req, SM_BAD_STATE, 1);
        return;
    }
    uploading = 0;
    if (region_finish() != 0 || sm_crc32(0, region_ptr(), (int32_t)upload_size) != upload_crc) {
        send_reply(req, SM_BAD_CRC, 1);
        return;
    }
    const int used = sm_model_use(region_ptr(), upload_size);
    if (used == 0) region_active = 1;
    send_reply(req, used == 0 ? SM_OK : used == -2 ? SM_WRONG_EXPORT
                    : used == -3 ? SM_BAD_CRC : SM_BAD_ARGUMENT, 1);
}

static void handle(const sm_frame_t *req) {
    stats.frames++;
    switch (req->type) {
    case SM_INFO:
        info(req);
        break;
    case SM_STATS:
        stats_reply(req);
        break;
    case SM_STREAM_BEGIN: {
        const int32_t level = req->length == 1 ? (int8_t)req->payload[0] : 1000;
        if (sm_device_reset(&device, level) != 0) {
            send_reply(req, SM_BAD_ARGUMENT, 1);
            break;
        }
        streaming = 1;
        stats.utterances++;
        send_reply(req, SM_OK, 1);
        break;
    }
    case SM_STREAM:
        stream(req);
        break;
    case SM_MODEL_BEGIN:
        model_begin(req);
        break;
    case SM_MODEL_DATA:
        model_data(req);
        break;
    case SM_MODEL_COMMIT:
        model_commit(req);
        break;
    default:
        send_reply(req, SM_UNKNOWN_TYPE, 1);
    }
}

int main(void) {
    sm_board_serial_init();
    sm_board_counter_start();
    sm_board_stack_paint();
    sm_model_init();
    if (sm_model_check() != 0) {
        /* a corrupt model never runs: say so on the port, once a second, forever */
        static const char msg[] = "speechmask: model CRC mismatch; flash the firmware again\n";
        for (;;) {
            sm_board_serial_write((const uint8_t *)msg, (int32_t)sizeof msg - 1);
            for (volatile uint32_t i = 0; i < 20000000u; i++) {
            }
        }
    }
    /* a model uploaded before the last reset, if the region holds a valid one for this export */
    if (sm_model_use(region_ptr(), SM_MODEL_BLOB_BYTES) == 0 && sm_model_check() == 0)
        region_active = 1;
    else
        sm_model_use(sm_model_builtin_blob(), SM_MODEL_BLOB_BYTES);
    max_chunk = SM_PROTO_MAX_PAYLOAD / 2;
    while (max_chunk > 0 && STREAM_HEAD + worst_segments(max_chunk) * SEGMENT_BYTES >
                                SM_PROTO_MAX_PAYLOAD)
        max_chunk--;
    sm_parser_reset(&parser);
    for (;;) {
        uint8_t rx[64];
        const int32_t n = sm_board_serial_read(rx, sizeof rx);
        for (int32_t i = 0; i < n; i++) {
            sm_frame_t frame;
            if (!sm_parser_feed(&parser, rx[i], &frame)) continue;
            do {
                handle(&frame);
            } while (sm_parser_poll(&parser, &frame));
        }
    }
}
