/* STM32H743 clocks and console, register by register (RM0433), no vendor headers:
 * - supply from the LDO, voltage scale 1 then 0 (overdrive), flash 4 wait states;
 * - PLL1 from the 64 MHz HSI: /4 = 16 MHz reference, x60 = 960 MHz VCO, /2 = 480 MHz system
 *   clock; AHB 240 MHz, APB1-4 120 MHz;
 * - USART3 on PD8 (TX) / PD9 (RX), alternate function 7: the NUCLEO-H743ZI's ST-LINK virtual
 *   COM port, 115200 8N1, from the 120 MHz APB1 clock; newlib's printf writes to it (_write). */
#include <stdint.h>

#define REG(addr) (*(volatile uint32_t *)(addr))
#define RCC 0x58024400u
#define PWR 0x58024800u
#define SYSCFG 0x58000400u
#define FLASH_ACR REG(0x52002000u)
#define GPIOD 0x58020C00u
#define USART3 0x40004800u
#define SYSCLK_HZ 480000000u
#define APB1_HZ (SYSCLK_HZ / 4)
#define BAUD 115200u

static void wait_set(volatile uint32_t *reg, uint32_t bits) {
    while ((*reg & bits) != bits) {
    }
}

void sm_system_init(void) {
    /* supply: LDO on, SMPS off; wait until the voltage levels are ready */
    REG(PWR + 0x0C) = (REG(PWR + 0x0C) & ~0x7u) | 0x2u;    /* PWR_CR3: LDOEN */
    wait_set(&REG(PWR + 0x04), 1u << 13);                  /* PWR_CSR1: ACTVOSRDY */
    REG(PWR + 0x18) |= 3u << 14;                           /* PWR_D3CR: VOS = scale 1 */
    wait_set(&REG(PWR + 0x18), 1u << 13);                  /* VOSRDY */
    REG(RCC + 0xF4) |= 1u << 1;                            /* RCC_APB4ENR: SYSCFGEN */
    REG(SYSCFG + 0x2C) |= 1u;                              /* SYSCFG_PWRCR: ODEN (scale 0) */
    wait_set(&REG(PWR + 0x18), 1u << 13);
    /* flash: 4 wait states, programming delay 2 (480 MHz at scale 0) */
    FLASH_ACR = (FLASH_ACR & ~0x3Fu) | (2u << 4) | 4u;
    while ((FLASH_ACR & 0xFu) != 4u) {
    }
    /* PLL1: HSI (64 MHz) / 4 = 16 MHz (range 8-16 MHz), N = 60, P = 2 */
    wait_set(&REG(RCC + 0x00), 1u << 2);                   /* RCC_CR: HSIRDY */
    REG(RCC + 0x28) = (REG(RCC + 0x28) & ~0x3F3u) | (4u << 4);      /* PLLCKSELR: HSI, M = 4 */
    REG(RCC + 0x2C) = (REG(RCC + 0x2C) & ~0x7000Fu) | (3u << 2) | (1u << 16); /* RGE 3, DIVP */
    REG(RCC + 0x30) = (59u << 0) | (1u << 9) | (1u << 16) | (1u << 24); /* N-1, P-1, Q-1, R-1 */
    REG(RCC + 0x00) |= 1u << 24;                           /* PLL1ON */
    wait_set(&REG(RCC + 0x00), 1u << 25);                  /* PLL1RDY */
    /* prescalers: core /1, AHB /2, APB3 /2; APB1 /2, APB2 /2; APB4 /2 */
    REG(RCC + 0x18) = (0u << 8) | (4u << 4) | 8u;         /* D1CFGR: D1CPRE, D1PPRE, HPRE */
    REG(RCC + 0x1C) = (4u << 8) | (4u << 4);              /* D2CFGR: D2PPRE2, D2PPRE1 */
    REG(RCC + 0x20) = 4u << 4;                             /* D3CFGR: D3PPRE */
    REG(RCC + 0x10) = (REG(RCC + 0x10) & ~0x7u) | 3u;      /* CFGR: SW = PLL1 */
    while (((REG(RCC + 0x10) >> 3) & 0x7u) != 3u) {        /* SWS */
    }
    /* USART3 on PD8/PD9, AF7 */
    REG(RCC + 0xE0) |= 1u << 3;                            /* AHB4ENR: GPIODEN */
    REG(RCC + 0xE8) |= 1u << 18;                           /* APB1LENR: USART3EN */
    REG(GPIOD + 0x00) = (REG(GPIOD + 0x00) & ~(0xFu << 16)) | (0xAu << 16); /* MODER: AF */
    REG(GPIOD + 0x24) = (REG(GPIOD + 0x24) & ~0xFFu) | 0x77u;              /* AFRH: AF7 */
    REG(USART3 + 0x0C) = (APB1_HZ + BAUD / 2) / BAUD;      /* BRR */
    REG(USART3 + 0x00) = (1u << 3) | (1u << 2) | 1u;       /* CR1: TE, RE, UE */
}

void sm_uart_put(uint8_t byte) {
    while (!(REG(USART3 + 0x1C) & (1u << 7))) {            /* ISR: TXE (TXFNF) */
    }
    REG(USART3 + 0x28) = byte;                             /* TDR */
}

/* newlib's write: stdout and stderr to the virtual COM port (LF as CR LF). */
int _write(int fd, const char *buf, int len);
int _write(int fd, const char *buf, int len) {
    (void)fd;
    for (int i = 0; i < len; i++) {
        if (buf[i] == '\n') sm_uart_put('\r');
        sm_uart_put((uint8_t)buf[i]);
    }
    return len;
}
