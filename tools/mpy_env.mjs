// A fresh MicroPython (webassembly port) with firmware/ in /lib and tests/firmware/ in /tests.
// copyTree is also the flash restore of tools/mpy_agent.mjs.
import { loadMicroPython } from "@micropython/micropython-webassembly-pyscript";
import fs from "node:fs";
import path from "node:path";
import url from "node:url";

export const ROOT = path.resolve(path.dirname(url.fileURLToPath(import.meta.url)), "..");
export const TESTS = path.join(ROOT, "tests", "firmware");

export function copyTree(mp, src, dst) {
  try { mp.FS.mkdir(dst); } catch (e) { /* exists */ }
  for (const name of fs.readdirSync(src).sort()) {
    if (name === "__pycache__" || name.startsWith(".")) continue;
    const s = path.join(src, name);
    const d = dst + "/" + name;
    if (fs.statSync(s).isDirectory()) copyTree(mp, s, d);
    else mp.FS.writeFile(d, fs.readFileSync(s));
  }
}

// opts.tests (default true): also the firmware tests, on sys.path; opts.heapsize: the
// MicroPython heap in bytes (the port's default is 1 MB).
export async function loadFirmware(write, opts = {}) {
  const mp = await loadMicroPython({ stdout: write, stderr: write, linebuffer: true,
    ...(opts.heapsize ? { heapsize: opts.heapsize } : {}) });
  copyTree(mp, path.join(ROOT, "firmware"), "/lib");
  if (opts.tests !== false) {
    copyTree(mp, TESTS, "/tests");
    mp.runPython("import sys\nsys.path.insert(0, '/tests')");
  }
  return mp;
}
