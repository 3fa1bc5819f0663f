// Runs an async benchmark script inside real MicroPython; the script's last line is JSON.
// Usage: node tools/bench/mpy_async.mjs script.py
// The script defines `async def main()` returning a dict; it runs as a task of its own because
// asyncio.wait_for cannot wake the top level of the webassembly port.
import fs from "node:fs";
import { loadFirmware } from "../mpy_env.mjs";

const mp = await loadFirmware((l) => process.stdout.write(l + "\n"));
try {
  mp.runPython(fs.readFileSync(process.argv[2], "utf8"));
  await mp.runPythonAsync(
    "import asyncio, json\nprint(json.dumps(await asyncio.create_task(main())))");
} catch (e) {
  console.error(String(e.message || e));
  process.exit(1);
}
