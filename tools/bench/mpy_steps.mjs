// Runs a benchmark script's STEPS inside real MicroPython and measures the live heap after each.
// Usage: node tools/bench/mpy_steps.mjs script.py
// The script imports what it needs and defines STEPS = [(name, fn), ...] and report(marks).
// The webassembly port reclaims garbage only once control is back in JS (within one runPython
// call gc.collect() frees nothing), so every step and every gc.collect() is a call of its own.
import fs from "node:fs";
import { loadFirmware } from "../mpy_env.mjs";

const mp = await loadFirmware((l) => process.stdout.write(l + "\n"));
try {
  mp.runPython(fs.readFileSync(process.argv[2], "utf8"));
  mp.runPython("import gc, json\n_MARKS = []");
  mp.runPython("gc.collect()");
  mp.runPython("_BASE = gc.mem_alloc()");
  mp.runPython("_N = len(STEPS)");
  const n = mp.globals.get("_N");
  for (let i = 0; i < n; i++) {
    mp.runPython(`STEPS[${i}][1]()`);
    mp.runPython("gc.collect()");
    mp.runPython(`_MARKS.append((STEPS[${i}][0], gc.mem_alloc() - _BASE))`);
  }
  mp.runPython("print(json.dumps(report(_BASE, _MARKS)))");
} catch (e) {
  console.error(String(e.message || e));
  process.exit(1);
}
