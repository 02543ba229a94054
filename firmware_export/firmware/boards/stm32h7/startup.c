/* STM32H743: the reset handler (the vector table, at 0x08000000 in section .isr_vector as ST's
 * startup files name it, is cortex_m/cortex_m.c's): copy .data from flash to DTCM, clear .bss,
 * enable the FPU, set the clocks (system.c), run main. Built and size-checked here; not run on a
 * board in this project's tests (there is none): the register sequence follows RM0433. */
#include <stdint.h>

#include "cortex_m.h"

extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss;
extern int main(void);
extern void sm_system_init(void);
void Reset_Handler(void);

void Reset_Handler(void) {
    const uint32_t *src = &_sidata;
    for (uint32_t *dst = &_sdata; dst < &_edata;) *dst++ = *src++;
    for (uint32_t *dst = &_sbss; dst < &_ebss;) *dst++ = 0;
    sm_cortex_m_enable_fpu();
    sm_system_init();
    (void)main();
    for (;;) {
    }
}
