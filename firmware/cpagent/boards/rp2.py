"""Raspberry Pi Pico W board (RP2040 and CYW43 Wi-Fi, one RS-485 transceiver) over boards.mcu."""
from cpagent.boards.mcu import McuBoard


class Board(McuBoard):
    """Board(cfg) for a Pico W: epoch 1970, two UARTs (the REPL is on USB, so both are free)."""

    UARTS = {0: (0, 1), 1: (4, 5)}  # uart -> (tx, rx): GP0/GP1 and GP4/GP5
    DE = 2  # GP2
    LED = "LED"  # the on-board LED hangs off the Wi-Fi chip, reached by name
    # GP23 switches the CYW43 Wi-Fi chip's power, GP24 is its data and interrupt line, GP25 its
    # chip select, GP29 its clock: a config that drove one would cut the board off its network.
    RESERVED = ("the Wi-Fi chip's (GP23 power, GP24 data, GP25 select, GP29 clock)",
                23, 24, 25, 29)
    WDT_MAX_S = 8  # the RP2040 watchdog counts at most 8.3 s
    # MicroPython 1.27's rp2 mbedTLS has no PEM parser (no MBEDTLS_PEM_PARSE_C): the files are
    # DER, one certificate each (make deploy converts them).
    TLS_PEM = False
    # Its UART buffers are on the Python heap. The drivers' longest burst is 29 bytes (the
    # PN532's wake-up, then a command, then drain()); drain() writes the rest of any longer one
    # as the buffer empties.
    TXBUF = 32
