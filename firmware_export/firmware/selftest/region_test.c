/* Host test of the STM32H7 model region's programming order (boards/stm32h7/region.c): its flash
 * registers and sector pointed at plain memory, whatever chunks it is given are programmed as
 * whole 256-bit flash words, in order, the last padded with 0xFF; out-of-order or oversized
 * writes are refused. (The register sequence itself is RM0433's and needs a board.) */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static uint32_t regs[0x200 / 4];
static uint8_t flash[128 * 1024] __attribute__((aligned(32)));
#define FLASH_BASE_R ((uintptr_t)regs)
#define REGION_ADDRESS ((uintptr_t)flash)
#include "region.c"

int main(void) {
    static uint8_t data[5000];
    for (int i = 0; i < (int)sizeof data; i++) data[i] = (uint8_t)(i * 7 + 3);
    memset(flash, 0xFF, sizeof flash);
    regs[0x10C / 4] = CR_LOCK; /* locked, as after reset */
    int bad = sm_board_region_erase() != 0;
    bad |= regs[0x104 / 4] != 0xCDEF89ABu;            /* unlocked with the second key last */
    bad |= (regs[0x10C / 4] & (CR_SER | CR_PG)) != 0; /* no operation left selected */
    const uint32_t cuts[] = {7, 100, 893, 31, 1, 2000, 1968}; /* 5,000 bytes in odd pieces */
    uint32_t at = 0;
    for (unsigned i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        bad |= sm_board_region_program(at, data + at, cuts[i]) != 0;
        at += cuts[i];
    }
    bad |= sm_board_region_program(0, data, 4) != -1; /* out of order */
    bad |= sm_board_region_finish() != 0;
    bad |= memcmp(flash, data, sizeof data) != 0;
    for (uint32_t i = sizeof data; i < sizeof flash; i++) bad |= flash[i] != 0xFF;
    bad |= word_at != 5024; /* 157 flash words, the last one padded */
    bad |= sm_board_region(SM_BOARD_REGION_BYTES + 1) != 0;
    bad |= sm_board_region_program(5024, data, SM_BOARD_REGION_BYTES) != -1;
    printf("region: %s\n", bad ? "FAIL" : "ok");
    return bad;
}
