// Runs MicroPython firmware for the rp2 port in rp2040js (an RP2040 emulator: the core, its
// peripherals and USB; no CYW43 Wi-Fi chip) and commands at its REPL, over the emulated USB CDC.
// Usage: node tools/bench/rp2_emu.mjs BOOTROM FIRMWARE.uf2 FS.img[,ROMFS.img] FS_BASE[,ROMFS_BASE]
//          COMMAND...
//   BOOTROM: the RP2040's 16 KB boot ROM as a raw binary (rp2040js ships none; the pico-sdk
//   reaches its flash and float routines through it); FS.img is laid into the flash at FS_BASE
//   (bytes from the flash's start: where the port's littlefs lives), a ROMFS image, if given,
//   at ROMFS_BASE (a firmware with a ROMFS partition mounts it at /rom); each COMMAND is run in
//   turn at the raw REPL once the firmware is up.
// Prints each command's output as it came; exits 1 at the first command that raised (its
// traceback on stderr), 2 when the firmware does not answer within RP2_EMU_TIMEOUT_S emulated
// seconds (default 600). The emulated flash takes no write (rp2040js ignores the flash's program
// and erase commands; littlefs then refuses the write with an OSError): the filesystem is the
// image as given, read-only.
import fs from "node:fs";
import { ConsoleLogger, LogLevel, Simulator, USBCDC } from "rp2040js";

const TIMEOUT_S = Number(process.env.RP2_EMU_TIMEOUT_S || 600);
const UF2_MAGIC = [0x0a324655, 0x9e5d5157];
const FLASH_BASE = 0x10000000;
const [bootrom, uf2, image, base, ...commands] = process.argv.slice(2);

const sim = new Simulator();
const mcu = sim.rp2040;
mcu.logger = new ConsoleLogger(LogLevel.Error); // not each unemulated register the SDK touches
const rom = fs.readFileSync(bootrom);
mcu.loadBootrom(new Uint32Array(rom.buffer, rom.byteOffset, rom.length / 4));
const blocks = fs.readFileSync(uf2);
for (let at = 0; at + 512 <= blocks.length; at += 512) {
  const b = blocks.subarray(at, at + 512);
  const word = (i) => b.readUInt32LE(i);
  if (word(0) !== UF2_MAGIC[0] || word(4) !== UF2_MAGIC[1]) throw new Error(`${uf2}: not UF2`);
  mcu.flash.set(b.subarray(32, 32 + word(16)), word(12) - FLASH_BASE);
}
const bases = base.split(",");
image.split(",").forEach((path, i) => mcu.flash.set(fs.readFileSync(path), Number(bases[i])));

// rp2040js raises a UART's transmit interrupt again at every register access, so that clearing
// it does not hold: the port's handler, which clears it once its ring buffer is empty, runs for
// ever from machine.UART(). As on the PL011, the interrupt comes once the transmit FIFO has
// emptied (here at once: each written byte is out), and clearing it holds.
const UARTDR = 0x0;
const UARTTXINTR = 1 << 5;
for (const u of mcu.uart) {
  const write = u.writeUint32.bind(u);
  u.checkInterrupts = () => mcu.setInterrupt(u.irq, !!(u.interruptStatus & u.interruptMask));
  u.writeUint32 = (offset, value) => {
    if (offset === UARTDR) u.interruptStatus |= UARTTXINTR;
    write(offset, value);
    u.checkInterrupts();
  };
}

// The raw REPL (MicroPython's pyboard protocol): Ctrl-A enters it, each command ends with
// Ctrl-D and is answered "OK", its output, \x04, its error output, \x04, then the ">" prompt.
const cdc = new USBCDC(mcu.usbCtrl);
const queue = [];
let seen = "";
let state = "boot";
let current = 0;

function send(text) {
  queue.push(...Buffer.from(text, "latin1"));
}

// The CDC's FIFO to the device holds 512 bytes: the rest waits here.
function feed() {
  while (queue.length && !cdc.txFIFO.full) cdc.sendSerialByte(queue.shift());
}

function next() {
  if (current === commands.length) {
    process.exit(0);
  }
  seen = "";
  state = "ok";
  send(commands[current++] + "\x04");
}

cdc.onDeviceConnected = () => send("\r\x03\x03\x01");
cdc.onSerialData = (data) => {
  seen += Buffer.from(data).toString("latin1");
  if (state === "boot" && seen.includes("raw REPL; CTRL-B to exit\r\n>")) {
    next();
  } else if (state === "ok" && seen.startsWith("OK")) {
    seen = seen.slice(2);
    state = "out";
  }
  if (state === "out") {
    const end = seen.indexOf("\x04");
    process.stdout.write(seen.slice(0, end < 0 ? seen.length : end));
    seen = end < 0 ? "" : seen.slice(end + 1);
    if (end >= 0) state = "err";
  }
  if (state === "err") {
    const end = seen.indexOf("\x04>");
    if (end >= 0) {
      if (end > 0) {
        process.stderr.write(seen.slice(0, end) + "\n");
        process.exit(1);
      }
      next();
    }
  }
};

const step = sim.execute.bind(sim);
sim.execute = () => {
  feed();
  if (sim.clock.nanos > TIMEOUT_S * 1e9) {
    process.stderr.write(`rp2_emu: no answer in ${TIMEOUT_S} emulated s (${state}): ${seen}\n`);
    process.exit(2);
  }
  step();
};
mcu.core.PC = FLASH_BASE;
sim.execute();
