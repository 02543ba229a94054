"""The STM32 parts the flasher knows: product id (what Get ID answers) -> name and flash layout.

Sector sizes from ST's reference manuals (RM0433 H74x/75x, RM0455 H7A3/B3, RM0468 H72x/73x);
the ids from ST AN2606. The bootloader's Extended Erase numbers sectors from 0 at the start of
flash across both banks, as stm32flash and STM32CubeProgrammer do."""

from __future__ import annotations

from dataclasses import dataclass

FLASH_BASE = 0x0800_0000


@dataclass(frozen=True)
class Chip:
    product_id: int
    name: str
    flash_bytes: int
    sector_bytes: int
    bootloader_version: int  # what Get answers on that part (AN2606), for the emulator

    @property
    def flash_end(self) -> int:
        return FLASH_BASE + self.flash_bytes

    @property
    def sectors(self) -> int:
        return self.flash_bytes // self.sector_bytes

    def sector_of(self, address: int) -> int:
        return (address - FLASH_BASE) // self.sector_bytes

    def sector_address(self, sector: int) -> int:
        return FLASH_BASE + sector * self.sector_bytes

    def describe(self) -> str:
        return (f"{self.name} (0x{self.product_id:03X}): {self.flash_bytes // 1024} KiB flash "
                f"in {self.sectors} sectors of {self.sector_bytes // 1024} KiB")


CHIPS: dict[int, Chip] = {c.product_id: c for c in (
    Chip(0x450, "STM32H74x/75x", 2 * 1024 * 1024, 128 * 1024, 0x90),
    Chip(0x480, "STM32H7A3/B3", 2 * 1024 * 1024, 8 * 1024, 0x92),
    Chip(0x483, "STM32H72x/73x", 1024 * 1024, 128 * 1024, 0x93),
)}


def chip(product_id: int) -> Chip | None:
    return CHIPS.get(product_id)
