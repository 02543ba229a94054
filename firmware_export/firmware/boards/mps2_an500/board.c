/* mps2-an500 under QEMU: instructions counted with SysTick. Run with `-icount shift=0`, QEMU's
 * virtual clock advances one nanosecond per instruction and SysTick, on the 25 MHz processor
 * clock, ticks once per 40 instructions (shared/TOOLCHAIN.md: a 6-instruction loop run 100,000
 * times read 15,000 ticks). DWT's cycle counter is not emulated. Without -icount the ticks are
 * host time and mean nothing. */
#include "sm_board.h"

#define SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018u)
#define PERIOD 0x1000000u /* SysTick is a 24-bit down-counter */

const uint32_t sm_board_instructions_per_tick = 40;
const char *const sm_board_counter_unit = "instructions";

void sm_board_counter_start(void) {
    SYST_RVR = PERIOD - 1;
    SYST_CVR = 0;
    SYST_CSR = 5; /* enable, processor clock, no interrupt */
}

uint32_t sm_board_ticks(void) { return PERIOD - 1 - SYST_CVR; } /* counts up */

uint32_t sm_board_elapsed(uint32_t start) { return (sm_board_ticks() - start) & (PERIOD - 1); }

/* CMSDK APB UART0: DATA, STATE (bit 0 TX full, bit 1 RX full), CTRL (bit 0 TX, bit 1 RX
 * enable), BAUDDIV (QEMU's is always 8N1 and ignores the rate; 16 is the smallest legal divider). */
#define UART_DATA (*(volatile uint32_t *)0x40004000u)
#define UART_STATE (*(volatile uint32_t *)0x40004004u)
#define UART_CTRL (*(volatile uint32_t *)0x40004008u)
#define UART_BAUDDIV (*(volatile uint32_t *)0x40004010u)

void sm_board_serial_init(void) {
    UART_BAUDDIV = 16;
    UART_CTRL = 3;
}

void sm_board_serial_write(const uint8_t *data, int32_t n) {
    for (int32_t i = 0; i < n; i++) {
        while (UART_STATE & 1u) {
        }
        UART_DATA = data[i];
    }
}

int32_t sm_board_serial_read(uint8_t *data, int32_t max) {
    int32_t n = 0;
    while (n < max && (UART_STATE & 2u)) data[n++] = (uint8_t)UART_DATA;
    return n;
}
