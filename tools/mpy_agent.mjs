// Runs the whole agent in real MicroPython (webassembly port) in this Node process.
//
// Usage: node tools/mpy_agent.mjs --flash DIR --config FILE [--reader HOST:PORT]
//          [--meter HOST:PORT] [--mpy DIR] [--heap-ms N [--heap-imports M1,M2,...]
//          [--heap-js-gc 1]] [--heapsize BYTES]
// firmware/ goes to /lib, FILE to /config.json and DIR (the charger's flash, on the host) to
// /flash; then `import main`, as on a device. Node provides what boards/wasm.py uses, on the
// global cpagentHost: TCP sockets (the hub; --reader/--meter: the virtual devices behind
// host_sim/virtual/tcp_bridge.py), random bytes, and reset(), which ends the process with
// status 3 (the caller restarts it, as a device reboots). Status 2: the config was refused.
// --mpy DIR: the modules compiled there (tools/build.py's dist/esp32) replace their sources.
//
// Flash persistence, so that a power cut is `kill -9` and a new process over the same DIR:
// /flash is Emscripten's in-memory FS, and its close/rename/unlink/mkdir/rmdir are wrapped so
// that each one is done to DIR too before it returns to Python (write-through). A file goes out
// whole when it is closed after writing (host tmp file + rename: a kill never leaves half a
// copy), which is littlefs's rule too: a file's writes count once close() returned. So a write
// the agent made before the cut is there after it; one still open at the cut is not.
//
// --heap-ms N: heap figures instead of a plain start. gc.mem_alloc of the bare interpreter,
// then each module of --heap-imports imported on its own (leaf first, so that each figure is the
// module's own), the config dict and Board(cfg) each built on their own and dropped,
// app.build(Board), gc, the baseline (gc.mem_alloc), the journal's load; `HEAPSTEPS [[name,
// bytes], ...]` says what each step added. Then app.start and a task that every N ms collects and
// samples mem_alloc (the port frees garbage only outside the step that made it, so every step
// above is a runPython call of its own and the sampler a task of its own); at each new peak and
// about once a second it prints `HEAP {json}`: the interpreter's share, the baseline, now and
// peak above it, and the heap's size and largest free block from micropython.mem_info().
// --heap-js-gc 1: each sample first runs Node's garbage collector. A Python object handed to JS
// (bytes written to a socket, the callbacks of an awaited Promise) is held in the port's proxy
// table until Node's collector finalizes its JS proxy: heap a device does not spend, which this
// takes out of the figures.
import crypto from "node:crypto";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import v8 from "node:v8";
import vm from "node:vm";
import { copyTree, loadFirmware } from "./mpy_env.mjs";

const FLASH = "/flash";
const GC_BLOCK = 16; // bytes per GC block on 32-bit ports (wasm32, ESP32, RP2040)
const RX_CAP = 65536; // bytes read from a socket and not yet taken; more: the socket pauses

function args(argv) {
  const o = {};
  for (let i = 0; i < argv.length; i += 2) {
    if (!argv[i].startsWith("--") || argv[i + 1] === undefined) usage(`bad argument ${argv[i]}`);
    o[argv[i].slice(2)] = argv[i + 1];
  }
  if (!o.flash || !o.config) usage("--flash and --config are required");
  return o;
}

function usage(why) {
  console.error(`mpy_agent: ${why}\nusage: node tools/mpy_agent.mjs --flash DIR --config FILE ` +
    "[--reader HOST:PORT] [--meter HOST:PORT] [--mpy DIR] [--heap-ms N [--heap-imports " +
    "M1,M2,...] [--heap-js-gc 1]] [--heapsize BYTES]");
  process.exit(64);
}

// A socket for Python: bytes wait here until take(n) (so a read cancelled by a timeout loses
// none); ready() resolves once take() has something to say; errors come back as strings
// (a JS exception thrown into the wasm call would not be a Python exception).
class Stream {
  constructor(host, port) {
    this.chunks = [];
    this.size = 0;
    this.eof = false;
    this.error = null;
    this.waiters = [];
    this.sock = net.connect({ host, port, noDelay: true });
    this.connected = new Promise((resolve) => {
      this.sock.once("connect", () => resolve(""));
      this.sock.once("error", (e) => resolve(e.message));
    });
    this.sock.on("data", (d) => {
      this.chunks.push(d);
      this.size += d.length;
      if (this.size > RX_CAP) this.sock.pause();
      this.wake();
    });
    this.sock.on("end", () => { this.eof = true; this.wake(); });
    this.sock.on("close", () => { this.eof = true; this.wake(); });
    this.sock.on("error", (e) => { this.error = e.message; this.wake(); });
    this.sock.on("drain", () => this.wake());
  }

  wake() {
    const w = this.waiters;
    this.waiters = [];
    for (const resolve of w) resolve();
  }

  opened() { return this.connected; }

  ready() {
    if (this.size || this.eof || this.error) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  take(n) {
    if (!this.size) return this.error || (this.eof ? null : new Uint8Array(0));
    const all = Buffer.concat(this.chunks);
    const out = all.subarray(0, n);
    const rest = all.subarray(n);
    this.chunks = rest.length ? [rest] : [];
    this.size = rest.length;
    if (this.size <= RX_CAP) this.sock.resume();
    return new Uint8Array(out);
  }

  write(hex) { // cpagent/boards/wasm.py sends bytes as hex text: see its Stream.write
    if (!this.sock.destroyed) this.sock.write(Buffer.from(hex, "hex"));
  }

  drain() {
    if (!this.sock.writableNeedDrain || this.sock.destroyed) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  close() { this.sock.destroy(); }
}

// Every change under /flash is done to the host folder too, before the call returns.
function mirrorFlash(FS, dir) {
  const host = (p) => (p === FLASH || p.startsWith(FLASH + "/"))
    ? path.join(dir, p.slice(FLASH.length)) : null;
  const wrap = (name, after) => {
    const orig = FS[name];
    FS[name] = function (...a) {
      const r = orig.apply(this, a);
      after(...a);
      return r;
    };
  };
  wrap("close", (stream) => {
    const p = FS.getPath(stream.node);
    const h = host(p);
    if (h && (stream.flags & 3) !== 0 && FS.isFile(stream.node.mode)) { // opened to write
      const tmp = path.join(path.dirname(h), "." + path.basename(h) + ".mirror");
      fs.writeFileSync(tmp, FS.readFile(p));
      fs.renameSync(tmp, h);
    }
  });
  wrap("rename", (a, b) => {
    if (host(a) && host(b)) fs.renameSync(host(a), host(b));
  });
  wrap("unlink", (p) => { if (host(p)) fs.rmSync(host(p), { force: true }); });
  wrap("rmdir", (p) => { if (host(p)) fs.rmSync(host(p), { recursive: true, force: true }); });
  wrap("mkdir", (p) => { if (host(p)) fs.mkdirSync(host(p), { recursive: true }); });
}

// Each DIR/x.mpy replaces /lib/x.py (an import would take the .py first).
function useMpy(FS, dir, dst = "/lib") {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const d = dst + "/" + e.name;
    if (e.isDirectory()) useMpy(FS, path.join(dir, e.name), d);
    else if (e.name.endsWith(".mpy")) {
      FS.writeFile(d, fs.readFileSync(path.join(dir, e.name)));
      try { FS.unlink(d.slice(0, -4) + ".py"); } catch (err) { /* no source of that name */ }
    }
  }
}

// Drops copies a kill left half-made (the original is intact next to them).
function dropMirrorTmp(dir) {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) dropMirrorTmp(p);
    else if (e.name.startsWith(".") && e.name.endsWith(".mirror")) fs.rmSync(p);
  }
}

const HEAP_PROBE = `
import asyncio, gc, js, micropython
_H = [0, 0, 0]  # now, peak (above the baseline), samples

async def _heap(ms, js_gc):
    while True:
        await asyncio.sleep_ms(ms)
        if js_gc:
            js.cpagentHost.jsGc()
            await asyncio.sleep_ms(1)  # the finalizers of the dropped JS proxies run meanwhile
        gc.collect()
        a = gc.mem_alloc() - _BASE
        _H[0] = a
        _H[2] += 1
        if a > _H[1] or _H[2] % max(1, 1000 // ms) == 0:  # a new peak, and once a second
            _H[1] = max(a, _H[1])
            micropython.mem_info()
            print("HEAP %d %d %d %d %d" % (_EMPTY, _BASE, _H[0], _H[1], _H[2]))
`;

const o = args(process.argv.slice(2));
const heapMs = o["heap-ms"] ? parseInt(o["heap-ms"], 10) : 0;
const gcInfo = {};
let minFree = Infinity;
const write = (line) => {
  if (heapMs) { // mem_info's lines feed the HEAP report instead of the log
    let m = /^GC: total: (\d+), used: (\d+), free: (\d+)/.exec(line);
    if (m) { gcInfo.total = +m[1]; return; }
    m = /max free sz: (\d+)/.exec(line);
    if (m) { gcInfo.maxFree = +m[1] * GC_BLOCK; minFree = Math.min(minFree, gcInfo.maxFree); return; }
    if (/^stack: /.test(line)) return;
    m = /^HEAP (\d+) (\d+) (\d+) (\d+) (\d+)$/.exec(line);
    if (m) {
      line = "HEAP " + JSON.stringify({ interpreter: +m[1], baseline: +m[2],
        now_above_baseline: +m[3], peak_above_baseline: +m[4], samples: +m[5],
        sample_ms: heapMs, heap_total: gcInfo.total,
        largest_free_block: gcInfo.maxFree, smallest_largest_free_block: minFree });
    }
  }
  process.stdout.write(line + "\n");
};

const mp = await loadFirmware(write, { tests: false, heapsize: parseInt(o.heapsize || "0", 10) });
if (o.mpy) useMpy(mp.FS, o.mpy);
mp.FS.writeFile("/config.json", fs.readFileSync(o.config));
fs.mkdirSync(o.flash, { recursive: true });
dropMirrorTmp(o.flash);
copyTree(mp, o.flash, FLASH);
mirrorFlash(mp.FS, o.flash);
const jsGc = o["heap-js-gc"] ? (v8.setFlagsFromString("--expose-gc"), vm.runInNewContext("gc"))
  : () => {};
globalThis.cpagentHost = {
  jsGc,
  reader: o.reader || null,
  meter: o.meter || null,
  connect: (host, port) => new Stream(host, port),
  randHex: (n) => crypto.randomBytes(n).toString("hex"),
  reset: () => {
    process.stdout.write("mpy_agent: board.reset(): exit 3\n");
    process.exit(3);
  },
};
try {
  if (!heapMs) {
    mp.runPython("import main\n_started = main.task is not None");
  } else {
    mp.runPython("import gc\ngc.collect()");
    mp.runPython("_EMPTY = gc.mem_alloc()");
    // The figures stay in JS: a list of them in Python would count in the next steps.
    const steps = [];
    let at = mp.globals.get("_EMPTY");
    const step = (name, code) => {
      mp.runPython(code);
      mp.runPython("gc.collect()");
      mp.runPython("_A = gc.mem_alloc()");
      steps.push([name, mp.globals.get("_A") - at]);
      at = mp.globals.get("_A");
    };
    for (const m of (o["heap-imports"] || "").split(",").filter((x) => x)) {
      step("import " + m, `__import__("${m}")`); // binds no name in __main__
    }
    step("config dict", "from cpagent import app, loader\n" +
      "with open(app.CONFIG, 'rb') as _f:\n    _cfg = loader.load(_f.read())");
    step("Board(cfg)", "from cpagent.boards.wasm import Board\n_board = Board(_cfg)");
    step("dropped", "_cfg = _board = _f = loader = None");
    step("app.build", "_built = app.build(Board)\n_started = _built is not None");
    mp.runPython("_BASE = gc.mem_alloc()");
    if (mp.globals.get("_started")) step("journal load", "_built[1].journal.load()");
    write("HEAPSTEPS " + JSON.stringify(steps));
    mp.runPython(HEAP_PROBE + `
if _started:
    app.start(*_built)
    asyncio.create_task(_heap(${heapMs}, ${o["heap-js-gc"] ? "True" : "False"}))
_built = None`);
  }
} catch (e) {
  console.error(String(e.message || e));
  process.exit(1);
}
if (!mp.globals.get("_started")) process.exit(2);
