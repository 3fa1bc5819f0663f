"""Boot-only: an McuBoard's pins, UARTs and TLS context from the loaded config, then freed."""
import machine
import tls
from micropython import const

from cpagent import ConfigError
from cpagent.loader import board_pins, check_board, tls_files

# A UART's receive ring buffer (the rp2 keeps it on the Python heap, the ESP32 in the IDF heap
# that Wi-Fi and mbedTLS share) must hold what its device sends while the event loop is held
# up, a TLS handshake for a second or so. An RDM6300 repeats its frame while a card is near and
# a line reader's device is anyone's: a second of 9600 baud. A PN532 and a meter send only the
# answer to what was asked, one frame, the largest a Modbus reply of 125 registers (255 bytes):
# the ports' default of 256 holds it.
_STREAM_RXBUF = const(1024)
_ANSWER_RXBUF = const(256)


def build(board, cfg):
    """Sets board.de, led, evse (enable output and plug input per EVSE in turn, or None),
    txdone, tls and the reader's and meter's UARTs; every refusal names the config field."""
    check_board(cfg, board.UARTS, board.WDT_MAX_S)
    ports, pins = board_pins(cfg, board.UARTS, board.DE, board.LED, board.RESERVED)
    board.de = board.txdone = board._reader = board._meter = None
    for what, n, baud, parity, tx, rx in ports:
        streams = what == "reader" and cfg["reader"]["type"] != "pn532"
        par = None if parity == "N" else "EO".index(parity)  # machine.UART: 0 even, 1 odd
        try:
            # timeout=0: asyncio streams poll the UART; the reads themselves never wait.
            u = machine.UART(n, baudrate=baud, bits=8, parity=par, stop=1, tx=tx, rx=rx,
                             rxbuf=_STREAM_RXBUF if streams else _ANSWER_RXBUF,
                             txbuf=board.TXBUF, timeout=0)
        except (ValueError, OSError) as e:
            raise ConfigError("board.%s_tx: UART %d on pins %r, %r: %s" % (what, n, tx, rx, e))
        if what == "meter":
            board._meter = u
            board.txdone = u.txdone  # DE drops once the last stop bit is out, not at drain()
        else:
            board._reader = u
    made = [_pin(*p) for p in pins]
    board.de, board.led = made[0], made[1]
    board.evse = made[2:]
    board.tls = _context(cfg["uplink"], tls_files(cfg["uplink"], board.TLS_PEM))


def _pin(field, v, out):
    if v is None:
        return None
    try:
        if out:
            return machine.Pin(v, machine.Pin.OUT, value=0)
        return machine.Pin(v, machine.Pin.IN, machine.Pin.PULL_UP)
    except (ValueError, TypeError) as e:
        raise ConfigError("%s: pin %r cannot be used on this board (%s)" % (field, v, e))


def _context(u, files):
    if files is None:
        return None
    ctx = tls.SSLContext(tls.PROTOCOL_TLS_CLIENT)
    # mbedtls checks nothing below CERT_REQUIRED; insecure is for test hubs only.
    ctx.verify_mode = tls.CERT_NONE if u.get("insecure") else tls.CERT_REQUIRED
    ca, cert, key = files
    field = "uplink.ca"
    try:
        if ca:
            ctx.load_verify_locations(ca)
        if cert:
            field = "uplink.cert"
            ctx.load_cert_chain(cert, key)
    except ValueError as e:  # mbedtls refused the file
        raise ConfigError("%s: not a certificate or key this port's TLS can load (%s)"
                          % (field, e))
    return ctx
