/* QEMU's Cortex-M7 machine (`qemu-system-arm -M mps2-an500`): the reset handler (the vector
 * table is cortex_m/cortex_m.c's). It enables the FPU, then hands over to newlib's _start
 * (rdimon: semihosting), which clears .bss, calls main and passes its return value to QEMU as
 * the exit code. .data needs no copy: QEMU's ELF loader writes it to its RAM address. */
#include "cortex_m.h"

extern void _start(void);
void Reset_Handler(void);

void Reset_Handler(void) {
    sm_cortex_m_enable_fpu();
    _start();
    for (;;) {
    }
}
