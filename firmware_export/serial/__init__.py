"""Serial tools: the STM32 system bootloader (ST AN3155) client and emulator, firmware images,
and the pseudo-terminal that stands in for a USB-serial cable (`speechmask flash`, `speechmask
board`)."""
