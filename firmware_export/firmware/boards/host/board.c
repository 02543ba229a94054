/* The host build: nothing to count (its instructions are not the device's). */
#include "sm_board.h"

#include <stdio.h>
#include <stdlib.h>

const uint32_t sm_board_instructions_per_tick = 0;
const char *const sm_board_counter_unit = "none";

void sm_board_counter_start(void) {}
uint32_t sm_board_ticks(void) { return 0; }
uint32_t sm_board_elapsed(uint32_t start) { return (void)start, 0; }
void sm_board_stack_paint(void) {}
uint32_t sm_board_stack_used(void) { return 0; }

void sm_board_serial_init(void) {}

void sm_board_serial_write(const uint8_t *data, int32_t n) {
    fwrite(data, 1, (size_t)n, stdout);
    fflush(stdout);
}

/* The application's link on the host is stdin: one byte at a time, blocking; end of input ends
 * the program (the host has no reset to wait for). */
int32_t sm_board_serial_read(uint8_t *data, int32_t max) {
    const int c = getchar();
    if (c == EOF) exit(0);
    (void)max;
    data[0] = (uint8_t)c;
    return 1;
}
