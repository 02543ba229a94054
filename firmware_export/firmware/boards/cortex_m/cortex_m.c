/* Shared by the Cortex-M7 boards (mps2_an500, stm32h7): the vector table (section .isr_vector,
 * placed first by each board's linker script; the board's startup.c defines Reset_Handler), the
 * default handler, FPU enable, and the stack's high-water mark by painting (sm_board.h). */
#include <stdint.h>

#include "cortex_m.h"
#include "sm_board.h"

#define PATTERN 0xC0FFEE11u
#define PAINT_WORDS 4096u /* 16 KB below the caller's frame; the heap (printf's buffers) is lower */

extern uint32_t __stack;
void Reset_Handler(void);
void Default_Handler(void);

void Default_Handler(void) {
    for (;;) {
    }
}

/* The initial stack pointer, then the 15 system exceptions; the peripheral interrupts are not
 * used (interrupts stay disabled). */
__attribute__((section(".isr_vector"), used)) void *const sm_vectors[16] = {
    (void *)&__stack, (void *)Reset_Handler, (void *)Default_Handler, (void *)Default_Handler,
    (void *)Default_Handler, (void *)Default_Handler, (void *)Default_Handler, 0, 0, 0, 0,
    (void *)Default_Handler, (void *)Default_Handler, 0, (void *)Default_Handler,
    (void *)Default_Handler,
};

/* The image is built for the hard-float ABI; with the FPU off the first float instruction hangs
 * the core. */
void sm_cortex_m_enable_fpu(void) {
    *(volatile uint32_t *)0xE000ED88u |= 0xFu << 20; /* CPACR: CP10, CP11 full access */
    __asm volatile("dsb\n\tisb" ::: "memory");
}

static uint32_t *stack_top;

void sm_board_stack_paint(void) {
    uint32_t *sp;
    __asm volatile("mov %0, sp" : "=r"(sp));
    stack_top = sp;
    for (volatile uint32_t *p = stack_top - PAINT_WORDS; p < stack_top - 16; p++) *p = PATTERN;
}

uint32_t sm_board_stack_used(void) {
    const uint32_t *p = stack_top - PAINT_WORDS; /* all 16 KB used: reads as 16 KB */
    while (p < stack_top && *p == PATTERN) p++;
    return (uint32_t)((stack_top - p) * sizeof(uint32_t));
}
