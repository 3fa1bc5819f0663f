// A fresh MicroPython (webassembly port) with firmware/ in /lib and tests/firmware/ in /tests.
import { loadMicroPython } from "@micropython/micropython-webassembly-pyscript";
import fs from "node:fs";
import path from "node:path";
import url from "node:url";

export const ROOT = path.resolve(path.dirname(url.fileURLToPath(import.meta.url)), "..");
export const TESTS = path.join(ROOT, "tests", "firmware");

function copyTree(mp, src, dst) {
  try { mp.FS.mkdir(dst); } catch (e) { /* exists */ }
  for (const name of fs.readdirSync(src).sort()) {
    if (name === "__pycache__" || name.startsWith(".")) continue;
    const s = path.join(src, name);
    const d = dst + "/" + name;
    if (fs.statSync(s).isDirectory()) copyTree(mp, s, d);
    else mp.FS.writeFile(d, fs.readFileSync(s));
  }
}

export async function loadFirmware(write) {
  const mp = await loadMicroPython({ stdout: write, stderr: write, linebuffer: true });
  copyTree(mp, path.join(ROOT, "firmware"), "/lib");
  copyTree(mp, TESTS, "/tests");
  mp.runPython("import sys\nsys.path.insert(0, '/tests')");
  return mp;
}
