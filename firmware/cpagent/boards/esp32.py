"""ESP32 board (an ESP32-WROOM DevKit, one RS-485 transceiver): its pins over boards.mcu."""
import esp32

from cpagent.boards.mcu import McuBoard


class Board(McuBoard):
    """Board(cfg) for an ESP32: epoch 2000 (cpagent.boards.mcu converts), three UARTs."""

    # uart -> (tx, rx). UART0 is the REPL on the USB bridge; UART1's own pins (9, 10) are the
    # module's flash, so it is moved to free GPIOs; UART2 keeps its defaults (17, 16).
    UARTS = {1: (27, 26), 2: (17, 16)}
    DE = 4  # the transceiver's DE and /RE tied together
    LED = 2  # the blue LED of most DevKits
    # GPIO6-11 are wired to the module's SPI flash: driving one crashes the ESP32.
    RESERVED = ("the module's flash (GPIO6-11)", 6, 7, 8, 9, 10, 11)
    WDT_MAX_S = 60
    TLS_PEM = True  # the IDF's mbedTLS parses PEM (and chains of CA certificates)

    def heap(self):
        # mbedTLS allocates from the IDF heap here, not from MicroPython's: that is the one to
        # watch before a handshake. Each region: (total, free, largest free block, least free).
        text = McuBoard.heap(self)
        info = getattr(esp32, "idf_heap_info", None)
        if info is None:
            return text
        regions = info(esp32.HEAP_DATA)
        return "%s; IDF heap %d B free, largest block %d B" % (
            text, sum(r[1] for r in regions), max([r[2] for r in regions] or [0]))
