/* What every Cortex-M7 board shares (cortex_m.c): the FPU switched on before the first float
 * instruction. The vector table, the default handler and the stack painting live there too. */
#ifndef SM_CORTEX_M_H
#define SM_CORTEX_M_H

void sm_cortex_m_enable_fpu(void);

#endif
