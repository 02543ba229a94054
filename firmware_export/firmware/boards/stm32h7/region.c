/* STM32H743: the reserved model region of MODEL upload, the last 128 KB sector of flash bank 2
 * (sector 7 of bank 2, 0x081E0000), erased and programmed through bank 2's flash registers as
 * RM0433 (section 4.3.9) describes: unlock with the two keys, sector erase with SER + SNB +
 * START, programming one 256-bit flash word at a time with PG set, waiting for QW to clear and
 * checking the error flags. 64-bit parallelism (PSIZE = 3) for a 3.3 V supply, as on a
 * NUCLEO-H743ZI. The firmware runs from bank 1, so programming bank 2 does not stall it.
 * Not run on a board in this project (none here); the emulated boards keep the region in RAM. */
#include "sm_board.h"

#include <string.h>

/* Both addresses can be overridden to point at plain memory: the host test of the programming
 * order and padding (tests/test_firmware_app.py) builds this file that way. */
#ifndef FLASH_BASE_R
#define FLASH_BASE_R 0x52002000u
#endif
#define KEYR2 (*(volatile uint32_t *)(FLASH_BASE_R + 0x104u))
#define CR2 (*(volatile uint32_t *)(FLASH_BASE_R + 0x10Cu))
#define SR2 (*(volatile uint32_t *)(FLASH_BASE_R + 0x110u))
#define CCR2 (*(volatile uint32_t *)(FLASH_BASE_R + 0x114u))

#define CR_LOCK (1u << 0)
#define CR_PG (1u << 1)
#define CR_SER (1u << 2)
#define CR_PSIZE_X64 (3u << 4)
#define CR_START (1u << 7)
#define CR_SNB(n) ((uint32_t)(n) << 8)
#define SR_QW (1u << 2)
#define SR_ERRORS 0x07EE0000u /* WRPERR PGSERR STRBERR INCERR OPERR RDPERR RDSERR SNECCERR DBECCERR */

#ifndef REGION_ADDRESS
#define REGION_ADDRESS 0x081E0000u
#endif
#define REGION_SECTOR 7 /* of bank 2 */
#define FLASH_WORD 32

static uint8_t word[FLASH_WORD] __attribute__((aligned(4)));
static uint32_t word_at, word_fill;

#if defined(__arm__)
static void dsb(void) { __asm__ volatile("dsb 0xF" ::: "memory"); }
#else
static void dsb(void) {}
#endif

static int wait_done(void) {
    while (SR2 & SR_QW) {
    }
    const uint32_t errors = SR2 & SR_ERRORS;
    CCR2 = errors;
    return errors ? -1 : 0;
}

static void unlock(void) {
    if (CR2 & CR_LOCK) {
        KEYR2 = 0x45670123u;
        KEYR2 = 0xCDEF89ABu;
    }
}

const uint8_t *sm_board_region(uint32_t bytes) {
    return bytes <= SM_BOARD_REGION_BYTES ? (const uint8_t *)REGION_ADDRESS : 0;
}

int sm_board_region_erase(void) {
    unlock();
    CCR2 = SR_ERRORS;
    CR2 = CR_PSIZE_X64 | CR_SER | CR_SNB(REGION_SECTOR);
    CR2 |= CR_START;
    dsb();
    const int status = wait_done();
    CR2 &= ~(CR_SER | CR_SNB(7));
    word_at = word_fill = 0;
    return status;
}

static int program_word(void) {
    volatile uint32_t *dst = (volatile uint32_t *)(REGION_ADDRESS + word_at);
    const uint32_t *src = (const uint32_t *)word;
    CR2 = CR_PSIZE_X64 | CR_PG;
    for (int i = 0; i < FLASH_WORD / 4; i++) dst[i] = src[i];
    dsb();
    const int status = wait_done();
    CR2 &= ~CR_PG;
    word_at += FLASH_WORD;
    word_fill = 0;
    return status;
}

int sm_board_region_program(uint32_t offset, const uint8_t *data, uint32_t n) {
    if (offset != word_at + word_fill || offset + n > SM_BOARD_REGION_BYTES) return -1;
    while (n) {
        const uint32_t take = n < FLASH_WORD - word_fill ? n : FLASH_WORD - word_fill;
        memcpy(word + word_fill, data, take);
        word_fill += take;
        data += take;
        n -= take;
        if (word_fill == FLASH_WORD && program_word() != 0) return -1;
    }
    return 0;
}

int sm_board_region_finish(void) {
    if (!word_fill) return 0;
    memset(word + word_fill, 0xFF, FLASH_WORD - word_fill); /* erased flash's value */
    word_fill = FLASH_WORD;
    return program_word();
}
