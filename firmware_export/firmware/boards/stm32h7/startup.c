/* STM32H743: the vector table at 0x08000000 (section .isr_vector, as ST's startup files name it)
 * and the reset handler: copy .data from flash to DTCM, clear .bss, enable the FPU, set the
 * clocks (system.c), run main. Built and size-checked here; not run on a board in this project's
 * tests (there is none): the register sequence follows RM0433. */
#include <stdint.h>

extern uint32_t __stack, _sidata, _sdata, _edata, _sbss, _ebss;
extern int main(void);
extern void sm_system_init(void);

void Reset_Handler(void);
void Default_Handler(void);

void Reset_Handler(void) {
    const uint32_t *src = &_sidata;
    for (uint32_t *dst = &_sdata; dst < &_edata;) *dst++ = *src++;
    for (uint32_t *dst = &_sbss; dst < &_ebss;) *dst++ = 0;
    *(volatile uint32_t *)0xE000ED88u |= 0xFu << 20; /* CPACR: CP10, CP11 full access */
    __asm volatile("dsb\n\tisb" ::: "memory");
    sm_system_init();
    (void)main();
    for (;;) {
    }
}

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
