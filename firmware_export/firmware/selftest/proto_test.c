/* The C side of the protocol against the shared vectors (firmware_export/serial/
 * protocol_vectors.txt, which the Python tests read too): every vector's frame is encoded from
 * its fields byte for byte, and found by the parser with noise before it and after a corrupted
 * copy. Then stdin's bytes (from the test: garbage with frames in it) go through the parser; it
 * prints every frame it finds ("frame TYPE SEQ LENGTH CRC32-OF-PAYLOAD") and its error count,
 * which the test compares with the host parser's on the same bytes. Host only.
 * Usage: proto_test VECTORS < stream */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sm_proto.h"

static int hex_bytes(const char *hex, uint8_t *out) {
    if (strcmp(hex, "-") == 0) return 0;
    int n = 0;
    for (; hex[0] && hex[1]; hex += 2) {
        unsigned v;
        if (sscanf(hex, "%2x", &v) != 1) return -1;
        out[n++] = (uint8_t)v;
    }
    return n;
}

static int feed_all(sm_parser_t *p, const uint8_t *b, int n, sm_frame_t *last) {
    int found = 0;
    for (int i = 0; i < n; i++) {
        sm_frame_t f;
        if (!sm_parser_feed(p, b[i], &f)) continue;
        do {
            found++;
            *last = f;
        } while (sm_parser_poll(p, &f));
    }
    return found;
}

static uint8_t payload[SM_PROTO_MAX_PAYLOAD], frame[SM_PROTO_MAX_PAYLOAD + 16],
    encoded[SM_PROTO_MAX_PAYLOAD + 16], bad[SM_PROTO_MAX_PAYLOAD + 16];
static char line[3 * (SM_PROTO_MAX_PAYLOAD + 16) + 256], payload_hex[2 * SM_PROTO_MAX_PAYLOAD + 4],
    frame_hex[2 * SM_PROTO_MAX_PAYLOAD + 40];
static sm_parser_t parser;

int main(int argc, char **argv) {
    FILE *f = argc > 1 ? fopen(argv[1], "r") : NULL;
    if (!f) {
        fprintf(stderr, "usage: proto_test VECTORS < noise\n");
        return 2;
    }
    int vectors = 0, failures = 0;
    while (fgets(line, sizeof line, f)) {
        unsigned type, seq;
        if (line[0] == '#' || sscanf(line, "%x %x %s %s", &type, &seq, payload_hex,
                                     frame_hex) != 4)
            continue;
        const int n = hex_bytes(payload_hex, payload), m = hex_bytes(frame_hex, frame);
        const int len = sm_frame_encode(encoded, (uint8_t)type, (uint16_t)seq, payload, n);
        int ok = len == m && memcmp(encoded, frame, (size_t)m) == 0;
        memcpy(bad, frame, (size_t)m);
        bad[m - 1] ^= 0x40; /* a corrupted copy first: dropped, counted */
        const uint8_t noise[] = {'S', 0x00, 'M', 'S', 'S', 0xFF};
        sm_parser_reset(&parser);
        sm_frame_t got;
        int found = feed_all(&parser, noise, sizeof noise, &got);
        found += feed_all(&parser, bad, m, &got);
        found += feed_all(&parser, frame, m, &got);
        ok = ok && found == 1 && parser.errors == 1 && got.type == type && got.seq == seq &&
             got.length == n && memcmp(got.payload, payload, (size_t)n) == 0;
        printf("vector %d: %s\n", vectors, ok ? "ok" : "MISMATCH");
        failures += !ok;
        vectors++;
    }
    fclose(f);
    sm_parser_reset(&parser);
    int c;
    sm_frame_t got;
    while ((c = getchar()) != EOF) {
        if (!sm_parser_feed(&parser, (uint8_t)c, &got)) continue;
        do {
            printf("frame %02x %04x %u %08lx\n", got.type, got.seq, got.length,
                   (unsigned long)sm_crc32(0, got.payload, got.length));
        } while (sm_parser_poll(&parser, &got));
    }
    printf("errors %lu\n", (unsigned long)parser.errors);
    return failures || vectors == 0;
}
