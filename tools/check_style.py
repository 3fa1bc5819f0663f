"""Checks the firmware rules that ruff cannot: board-only imports, the layers, no f-strings, no
assert; and in tests/, that no test module imports another (helpers go in helper modules)."""
import ast
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIRMWARE = os.path.join(ROOT, "firmware")
TESTS = os.path.join(ROOT, "tests")
# Only the board layer (cpagent/boards/) and main.py may touch the hardware and the network.
HARDWARE = {"machine", "network", "socket", "ssl", "tls", "esp32", "rp2", "bluetooth"}
# The layers of cpagent: layer -> the layers its modules may import. The codec imports nothing of
# the agent; drivers and uplinks do not import each other; the core uses the codec; only agent,
# app and the board layers import across. A sub-package is a layer; agent and app are "agent",
# clock is "clock" (the uplinks read HTTP dates with it), every other top module "core".
LAYERS = {
    "oicp": {"oicp"},
    "drivers": {"drivers"},
    "uplink": {"uplink", "oicp", "clock"},
    "clock": {"clock"},
    "core": {"core", "oicp", "clock"},
    "agent": {"agent", "core", "oicp", "clock", "uplink", "drivers"},
    "boards": {"boards", "agent", "core", "oicp", "clock", "uplink", "drivers"},
}
PACKAGES = ("oicp", "uplink", "drivers", "boards")
# config checks a custom meter map against the meter's own vocabulary (host-side validation).
EXCEPTIONS = {("cpagent.config", "cpagent.drivers.meter_maps")}


def layer(module):
    """"cpagent.uplink.link" -> "uplink", "cpagent.app" -> "agent", "cpagent.charger" ->
    "core"; None outside cpagent."""
    parts = module.split(".")
    if parts[0] != "cpagent":
        return None
    name = parts[1] if len(parts) > 1 else ""
    if name in PACKAGES or name == "clock":
        return name
    return "agent" if name in ("agent", "app") else "core"


def imports(tree):
    """(line, module) of each import; "from cpagent.oicp import ids" names cpagent.oicp.ids."""
    pkgs = {"cpagent"} | {"cpagent." + p for p in PACKAGES}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield node.lineno, a.name
        elif isinstance(node, ast.ImportFrom) and node.module:
            for a in node.names:
                yield node.lineno, (node.module + "." + a.name if node.module in pkgs
                                    else node.module)


def layering(tree, rel):
    """The imports of firmware/<rel> that cross its layer's bounds."""
    if not rel.startswith("cpagent" + os.sep):
        return
    module = rel[:-3].replace(os.sep, ".")
    if module.endswith(".__init__"):
        module = module[:-9]
    for line, name in imports(tree):
        to = layer(name)
        if to is not None and to not in LAYERS[layer(module)] and (
                (module, name) not in EXCEPTIONS):
            yield "%s:%d: %s (layer %s) imports %s (layer %s): not allowed by LAYERS" % (
                rel, line, module, layer(module), name, to)


def problems(path, rel):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    tree = ast.parse(text, rel)
    board = rel.startswith(os.path.join("cpagent", "boards") + os.sep) or rel == "main.py"
    yield from layering(tree, rel)
    if not text.startswith('"""') or not text.split("\n", 1)[0].strip('"').strip():
        yield "%s:1: module needs a one-line header docstring" % rel
    for node in ast.walk(tree):
        where = "%s:%d:" % (rel, getattr(node, "lineno", 0))
        if isinstance(node, ast.JoinedStr):
            yield where + " f-string (use %-formatting: smaller and portable)"
        elif isinstance(node, ast.Assert):
            yield where + " assert (vanishes at opt>=1; raise ValueError)"
        elif isinstance(node, (ast.Import, ast.ImportFrom)) and not board:
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module]
            for n in names:
                if n and n.split(".")[0] in HARDWARE:
                    yield where + " imports %s outside the board layer" % n
        elif isinstance(node, ast.Attribute) and not board and node.attr == "sleep":
            if isinstance(node.value, ast.Name) and node.value.id == "time":
                yield where + " time.sleep blocks the event loop"


def imported_tests(tree, rel):
    """The imports of test module tests/<rel> that name another test module (test_*), at the top
    or inside a function, by statement or by __import__/importlib.import_module("test_...")."""
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module] if node.module else [a.name for a in node.names]
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            f = node.func
            if (isinstance(f, ast.Name) and f.id == "__import__") or (
                    isinstance(f, ast.Attribute) and f.attr == "import_module"):
                names = [node.args[0].value] if isinstance(node.args[0].value, str) else []
        for n in names:
            if any(part.startswith("test_") for part in n.split(".")):
                yield ("%s:%d: imports the test module %s (move what it shares to a helper "
                       "module)" % (rel, node.lineno, n))


def tests_problems(tests):
    """Each tests/**/test_*.py that imports another test module, by file and line."""
    for top, dirs, files in os.walk(tests):
        dirs[:] = sorted(d for d in dirs if d not in ("__pycache__", "data"))
        for name in sorted(files):
            if name.startswith("test_") and name.endswith(".py"):
                path = os.path.join(top, name)
                rel = os.path.relpath(path, os.path.dirname(tests))
                with open(path, encoding="utf-8") as f:
                    yield from imported_tests(ast.parse(f.read(), rel), rel)


def main(firmware=FIRMWARE, tests=TESTS):
    found = []
    for top, dirs, files in os.walk(firmware):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for name in sorted(files):
            if name.endswith(".py"):
                path = os.path.join(top, name)
                found.extend(problems(path, os.path.relpath(path, firmware)))
    found.extend(tests_problems(tests))
    for p in found:
        print(p)
    if found:
        sys.exit("check_style: %d problem(s) in firmware/ and tests/" % len(found))
    print("check_style: firmware/ follows the board, layer, f-string and assert rules; "
          "no test module imports another")


if __name__ == "__main__":
    main()
