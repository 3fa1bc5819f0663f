// Runs one Python script inside real MicroPython with the firmware loaded (used by benchmarks).
// Usage: node tools/mpy_run.mjs script.py   (top-level await is allowed: the port has no asyncio.run)
import fs from "node:fs";
import { loadFirmware } from "./mpy_env.mjs";

const mp = await loadFirmware((l) => process.stdout.write(l + "\n"));
try {
  await mp.runPythonAsync(fs.readFileSync(process.argv[2], "utf8"));
} catch (e) {
  console.error(String(e.message || e));
  process.exit(1);
}
