/* What a board gives the firmware beyond the core: a counter for measuring cost and the stack's
 * high-water mark. Each board implements it in boards/<board>/board.c. */
#ifndef SM_BOARD_H
#define SM_BOARD_H

#include <stdint.h>

/* Instructions (or cycles) per counter tick; 0 where the board cannot count (the host). */
extern const uint32_t sm_board_instructions_per_tick;
/* What a tick counts: "instructions" (QEMU -icount), "cycles" (DWT), "none" (the host). */
extern const char *const sm_board_counter_unit;

void sm_board_counter_start(void);
/* Ticks since `start` (an earlier sm_board_ticks()); exact while under one counter period. */
uint32_t sm_board_ticks(void);
uint32_t sm_board_elapsed(uint32_t start);

/* Fills the free stack below the caller's frame with a pattern; sm_board_stack_used() then
 * returns the bytes below that frame the stack has reached since (0 where not measured). */
void sm_board_stack_paint(void);
uint32_t sm_board_stack_used(void);

/* The board's serial port, the link to the host (8N1): mps2-an500's CMSDK UART0 at 0x40004000
 * (QEMU's first -serial), the NUCLEO-H743ZI's ST-LINK virtual COM port (USART3), the host's
 * stdout. Writes block until sent; reads return the bytes waiting (0 when none). */
void sm_board_serial_init(void);
void sm_board_serial_write(const uint8_t *data, int32_t n);
int32_t sm_board_serial_read(uint8_t *data, int32_t max);

/* The reserved model region MODEL upload writes (boards that define SM_BOARD_FLASH_REGION:
 * a flash sector that keeps an uploaded model across resets; the others keep the region in the
 * application's RAM). `sm_board_region` returns it if it holds `bytes`, else 0; erase, then
 * program in order from offset 0 (the board buffers its programming unit), then finish.
 * 0 on success, -1 on a flash error. */
#define SM_BOARD_REGION_BYTES (128u * 1024u)
const uint8_t *sm_board_region(uint32_t bytes);
int sm_board_region_erase(void);
int sm_board_region_program(uint32_t offset, const uint8_t *data, uint32_t n);
int sm_board_region_finish(void);

#endif
