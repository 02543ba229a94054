/* STM32H743: cycles counted by the DWT cycle counter (one tick per core cycle at 480 MHz);
 * the stack's high-water mark by painting (cortex_m/cortex_m.c). */
#include "sm_board.h"

#define DEMCR (*(volatile uint32_t *)0xE000EDFCu)
#define DWT_CTRL (*(volatile uint32_t *)0xE0001000u)
#define DWT_CYCCNT (*(volatile uint32_t *)0xE0001004u)
#define DWT_LAR (*(volatile uint32_t *)0xE0001FB0u)

const uint32_t sm_board_instructions_per_tick = 1; /* cycles, in fact: the record says which */
const char *const sm_board_counter_unit = "cycles";

void sm_board_counter_start(void) {
    DEMCR |= 1u << 24;      /* TRCENA */
    DWT_LAR = 0xC5ACCE55u;  /* unlock the DWT (Cortex-M7) */
    DWT_CYCCNT = 0;
    DWT_CTRL |= 1u;         /* CYCCNTENA */
}

uint32_t sm_board_ticks(void) { return DWT_CYCCNT; }

uint32_t sm_board_elapsed(uint32_t start) { return DWT_CYCCNT - start; }

/* USART3 (set up by system.c): the ST-LINK virtual COM port. */
#define USART3_ISR (*(volatile uint32_t *)0x4000481Cu)
#define USART3_RDR (*(volatile uint32_t *)0x40004824u)
extern void sm_uart_put(uint8_t byte);

void sm_board_serial_init(void) {}

void sm_board_serial_write(const uint8_t *data, int32_t n) {
    for (int32_t i = 0; i < n; i++) sm_uart_put(data[i]);
}

int32_t sm_board_serial_read(uint8_t *data, int32_t max) {
    int32_t n = 0;
    while (n < max && (USART3_ISR & (1u << 5))) data[n++] = (uint8_t)USART3_RDR; /* RXNE */
    return n;
}
