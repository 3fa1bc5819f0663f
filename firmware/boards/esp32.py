"""ESP32 board (an ESP32-WROOM DevKit, one RS-485 transceiver): its pins over boards.mcu."""
from boards.mcu import McuBoard


class Board(McuBoard):
    """Board(cfg) for an ESP32: epoch 2000 (boards.mcu converts), three UARTs."""

    # uart -> (tx, rx). UART0 is the REPL on the USB bridge; UART1's own pins (9, 10) are the
    # module's flash, so it is moved to free GPIOs; UART2 keeps its defaults (17, 16).
    UARTS = {1: (27, 26), 2: (17, 16)}
    DE = 4  # the transceiver's DE and /RE tied together
    LED = 2  # the blue LED of most DevKits
    WDT_MAX_S = 60
