"""Checks the firmware rules that ruff cannot: board-only imports, no f-strings, no assert."""
import ast
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIRMWARE = os.path.join(ROOT, "firmware")
# Only the board layer (cpagent/boards/) and main.py may touch the hardware and the network.
HARDWARE = {"machine", "network", "socket", "ssl", "tls", "esp32", "rp2", "bluetooth"}


def problems(path, rel):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    tree = ast.parse(text, rel)
    board = rel.startswith(os.path.join("cpagent", "boards") + os.sep) or rel == "main.py"
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


def main():
    found = []
    for top, dirs, files in os.walk(FIRMWARE):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for name in sorted(files):
            if name.endswith(".py"):
                path = os.path.join(top, name)
                found.extend(problems(path, os.path.relpath(path, FIRMWARE)))
    for p in found:
        print(p)
    if found:
        sys.exit("check_style: %d problem(s) in firmware/" % len(found))
    print("check_style: firmware/ follows the board, f-string and assert rules")


if __name__ == "__main__":
    main()
