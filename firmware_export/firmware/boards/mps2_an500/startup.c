/* QEMU's Cortex-M7 machine (`qemu-system-arm -M mps2-an500`): the vector table and the reset
 * handler. The reset handler enables the FPU (the image is built for the hard-float ABI; with the
 * FPU off the first float instruction hangs the core), then hands over to newlib's _start
 * (rdimon: semihosting), which clears .bss, calls main and passes its return value to QEMU as
 * the exit code. .data needs no copy: QEMU's ELF loader writes it to its RAM address. */
#include <stdint.h>

extern uint32_t __stack;
extern void _start(void);

void Reset_Handler(void);
void Default_Handler(void);

void Reset_Handler(void) {
    volatile uint32_t *const cpacr = (volatile uint32_t *)0xE000ED88u;
    *cpacr |= 0xFu << 20; /* CP10 and CP11: full access */
    __asm volatile("dsb\n\tisb" ::: "memory");
    _start();
    for (;;) {
    }
}

void Default_Handler(void) {
    for (;;) {
    }
}

/* Initial stack pointer, then the exception handlers (reset, NMI, HardFault, ... SysTick). */
__attribute__((section(".isr_vector"), used)) void *const sm_vectors[16] = {
    (void *)&__stack, (void *)Reset_Handler, (void *)Default_Handler, (void *)Default_Handler,
    (void *)Default_Handler, (void *)Default_Handler, (void *)Default_Handler, 0, 0, 0, 0,
    (void *)Default_Handler, (void *)Default_Handler, 0, (void *)Default_Handler,
    (void *)Default_Handler,
};
