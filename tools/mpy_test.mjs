// Runs the firmware tests inside the real MicroPython runtime (webassembly port, run by Node).
//
// Usage: node tools/mpy_test.mjs [tests/firmware/test_x.py ...]
// Loads firmware/ into the port's /lib and tests/firmware/ into /tests, then for each test
// module starts a fresh interpreter, imports the module and calls every test_* function in
// name order. A test that returns a coroutine is awaited (the port has no asyncio.run).
// Prints one line per test and a closing "N passed, N failed" line; exits 1 on any failure.
import fs from "node:fs";
import path from "node:path";
import { execFile } from "node:child_process";
import url from "node:url";
import { loadFirmware, TESTS } from "./mpy_env.mjs";

// The Python side of one module's run; results come back through globals.
const DRIVER = `
import sys, gc
_passed = 0
_failed = 0
_mod = __import__(_MODNAME)
for _name in sorted(dir(_mod)):
    if not _name.startswith('test_'):
        continue
    _fn = getattr(_mod, _name)
    if not callable(_fn):
        continue
    try:
        _r = _fn()
        if _r is not None and hasattr(_r, 'send'):
            await _r
        _passed += 1
        print('PASS', _MODNAME + '::' + _name)
    except BaseException as _e:
        _failed += 1
        print('FAIL', _MODNAME + '::' + _name)
        sys.print_exception(_e)
    gc.collect()
`;

async function runModule(file) {
  const out = [];
  const write = (l) => { out.push(l); process.stdout.write(l + "\n"); };
  const mp = await loadFirmware(write);
  const modname = path.basename(file, ".py");
  mp.globals.set("_MODNAME", modname);
  try {
    await mp.runPythonAsync(DRIVER);
  } catch (e) {
    // An import error or a crash of the driver itself: count the module as one failure.
    write("FAIL " + modname + " (module did not load): " + String(e.message || e).trim());
    return { passed: 0, failed: 1 };
  }
  return { passed: mp.globals.get("_passed"), failed: mp.globals.get("_failed") };
}

let files = process.argv.slice(2);
if (files.length === 0) {
  files = fs.readdirSync(TESTS).filter((n) => /^test_.*\.py$/.test(n)).sort()
    .map((n) => path.join(TESTS, n));
}
let passed = 0;
let failed = 0;
if (files.length === 1) {
  const r = await runModule(files[0]);
  passed = r.passed;
  failed = r.failed;
} else {
  // One Node process per module: interpreters left behind in one process add up until the
  // wasm memory (2 GB) runs out, which crashed long runs. Two at a time, in name order.
  const results = new Array(files.length);
  let next = 0;
  const worker = async () => {
    while (next < files.length) {
      const i = next++;
      const child = await new Promise((resolve) => execFile(
        process.execPath, [url.fileURLToPath(import.meta.url), files[i]],
        { encoding: "utf8", maxBuffer: 64 << 20 },
        (err, stdout, stderr) => resolve({ stdout, stderr })));
      const m = /micropython: (\d+) passed, (\d+) failed/.exec(child.stdout || "");
      results[i] = { out: (child.stdout || "") + (child.stderr || ""),
        passed: m ? +m[1] : 0, failed: m ? +m[2] : 1 };
      if (!m) results[i].out += `FAIL ${path.basename(files[i])} (runner crashed)\n`;
    }
  };
  await Promise.all([worker(), worker()]);
  for (const r of results) {
    // The child's own total line is replaced by the overall one below.
    process.stdout.write(r.out.replace(/^micropython: .*\n?/m, ""));
    passed += r.passed;
    failed += r.failed;
  }
}
console.log(`micropython: ${passed} passed, ${failed} failed`);
process.exit(failed || passed === 0 ? 1 : 0);
