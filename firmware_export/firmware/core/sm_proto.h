/* The application protocol's frames (firmware_export/serial/protocol.py is the host side; the
 * shared vectors firmware_export/serial/protocol_vectors.txt keep the two byte-compatible):
 *
 *   magic "SM" | version u8 | type u8 | seq u16 | length u16 | payload | crc32 u32
 *
 * little-endian, CRC-32 (IEEE) over everything before it. A reply has the request's type with
 * bit 7 set, its sequence number, and a status byte first in its payload. */
#ifndef SM_PROTO_H
#define SM_PROTO_H

#include <stdint.h>

#define SM_PROTO_VERSION 1
#define SM_PROTO_MAX_PAYLOAD 2048
#define SM_PROTO_HEADER 8
#define SM_PROTO_OVERHEAD (SM_PROTO_HEADER + 4)
#define SM_PROTO_REPLY 0x80

enum {
    SM_INFO = 0x01, SM_STATS = 0x02, SM_STREAM_BEGIN = 0x10, SM_STREAM = 0x11,
    SM_MODEL_BEGIN = 0x20, SM_MODEL_DATA = 0x21, SM_MODEL_COMMIT = 0x22
};
enum {
    SM_OK = 0, SM_UNKNOWN_TYPE = 1, SM_BAD_ARGUMENT = 2, SM_BAD_STATE = 3, SM_BAD_CRC = 4,
    SM_WRONG_EXPORT = 5, SM_TOO_LARGE = 6
};

typedef struct {
    uint8_t type;
    uint16_t seq;
    uint16_t length;
    const uint8_t *payload; /* into the parser's buffer: valid until the next byte is fed */
} sm_frame_t;

/* Bytes in, frames out, as the host's Parser: noise before a magic is skipped; a frame with
 * another version, an oversized length or a bad CRC is dropped (counted in `errors`) and the
 * search for a magic resumes one byte after the dropped one's. */
typedef struct {
    uint8_t buf[SM_PROTO_OVERHEAD + SM_PROTO_MAX_PAYLOAD];
    int32_t have;
    int32_t consumed; /* bytes of the frame last returned, dropped at the next call */
    uint32_t errors;
} sm_parser_t;

uint32_t sm_crc32(uint32_t crc, const uint8_t *data, int32_t n); /* crc: 0 to start */

void sm_parser_reset(sm_parser_t *p);

/* Feeds one byte; returns 1 and fills `frame` when a valid frame is complete. */
int sm_parser_feed(sm_parser_t *p, uint8_t byte, sm_frame_t *frame);
/* Returns 1 and fills `frame` if the bytes already buffered hold another complete frame (one
 * that followed a frame found inside a dropped one): call it after each frame until it returns
 * 0, and the parser finds exactly the host parser's frames. */
int sm_parser_poll(sm_parser_t *p, sm_frame_t *frame);

/* Writes the frame into `out` (room for SM_PROTO_OVERHEAD + n); returns its length. */
int32_t sm_frame_encode(uint8_t *out, uint8_t type, uint16_t seq, const uint8_t *payload,
                        int32_t n);

#endif
