"""Checks the board modules against each port's MicroPython API stubs (.pyi) with ast.

A board module may import only what the port has (or firmware/ packages). Of each module it
imports from the port, every attribute it reads, every class attribute, the keywords and the
number of positional arguments of every call, and every method used on an object built from a
port class (`w = network.WLAN(...)`, `self.w = ...`, then `w.connect(...)`) must be in the
port's stubs. Attributes that are only assigned (`ctx.verify_mode = ...`) are not checked: the
generated stubs list methods, not settable fields.

Stubs come from PyPI, pinned in requirements-stubs.txt, each package in its own folder under
build/stubs/ (the ports' packages share file names such as machine.pyi, so they cannot share
one site-packages). `python tools/stubcheck.py` installs them if missing and checks.
"""
import ast
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIRMWARE = os.path.join(ROOT, "firmware")
STUBS = os.path.join(ROOT, "build", "stubs")
PINS = os.path.join(ROOT, "requirements-stubs.txt")
# port -> stub packages, searched in this order. The rp2 port package describes the plain Pico
# (no network); the Pico W board package adds network, ntptime and tls (there is no 1.27 of it).
PORTS = {
    "esp32": ("micropython-esp32-stubs", "micropython-stdlib-stubs"),
    "rp2": ("micropython-rp2-stubs", "micropython-rp2-rpi-pico-w-stubs",
            "micropython-stdlib-stubs"),
}
# port -> the board modules its image holds (firmware/ relative)
BOARDS = {"esp32": ("cpagent/boards/esp32.py", "cpagent/boards/mcu.py",
                    "cpagent/boards/setup.py"),
          "rp2": ("cpagent/boards/rp2.py", "cpagent/boards/mcu.py", "cpagent/boards/setup.py")}
LOCAL = ("cpagent",)  # firmware packages: checked by the tests, not here


def pins(path=PINS):
    """{package: version} from the pins file."""
    out = {}
    with open(path) as f:
        for line in f:
            line = line.split("#")[0].strip()
            if line:
                name, version = line.split("==")
                out[name.strip()] = version.strip()
    return out


def folder(name, version):
    return os.path.join(STUBS, "%s-%s" % (name, version))


def install():
    """pip-install every pinned stub package into its own folder, if not there yet."""
    for name, version in pins().items():
        d = folder(name, version)
        if os.path.isdir(d):
            continue
        cmd = [sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check",
               "--no-deps", "--target", d + ".tmp", "%s==%s" % (name, version)]
        if subprocess.run(cmd).returncode:
            sys.exit("stubcheck: cannot install %s==%s" % (name, version))
        os.replace(d + ".tmp", d)


def roots(port):
    """The stub folders of a port, in search order (the stdlib package keeps its .pyi files in
    stdlib/)."""
    p = pins()
    out = []
    for name in PORTS[port]:
        d = folder(name, p[name])
        if not os.path.isdir(d):
            raise FileNotFoundError("stubs for %s not installed: run `make build` (or python "
                                    "tools/stubcheck.py)" % name)
        out.append(os.path.join(d, "stdlib") if os.path.isdir(os.path.join(d, "stdlib")) else d)
    return out


class Stubs:
    """The names each stub module defines, following `from x import *` and re-exports."""

    def __init__(self, folders):
        self.folders = folders
        self._mods = {}

    def _find(self, name):
        rel = name.replace(".", "/")
        for top in self.folders:
            for cand, pkg in ((rel + ".pyi", False), (rel + "/__init__.pyi", True)):
                path = os.path.join(top, cand)
                if os.path.isfile(path):
                    return path, pkg
        return None, False

    def module(self, name):
        """{name: [nodes]} of a stub module, or None if the port has no such module."""
        if name in self._mods:
            return self._mods[name] or {}  # {} while in progress: a star-import cycle
        path, pkg = self._find(name)
        if path is None:
            self._mods[name] = None
            return None
        self._mods[name] = False
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read(), path)
        syms = {}
        self._collect(tree.body, syms, name if pkg else name.rpartition(".")[0])
        self._mods[name] = syms
        return syms

    def _collect(self, body, syms, package):
        for n in body:
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)):
                syms.setdefault(n.name, []).append(n)
            elif isinstance(n, ast.ClassDef):
                syms[n.name] = [n]
            elif isinstance(n, (ast.Assign, ast.AnnAssign)):
                for t in (n.targets if isinstance(n, ast.Assign) else [n.target]):
                    if isinstance(t, ast.Name):
                        syms.setdefault(t.id, [n])
            elif isinstance(n, ast.Import):
                for a in n.names:
                    syms.setdefault(a.asname or a.name, [("module", a.name)])
            elif isinstance(n, ast.ImportFrom):
                base = n.module or ""
                if n.level:
                    up = package.split(".") if package else []
                    up = up[:len(up) - (n.level - 1)] if n.level > 1 else up
                    base = ".".join(up + ([n.module] if n.module else []))
                for a in n.names:
                    if a.name == "*":
                        for k, v in (self.module(base) or {}).items():
                            syms.setdefault(k, v)
                    else:
                        syms.setdefault(a.asname or a.name, [("ref", base, a.name)])
            elif isinstance(n, (ast.If, ast.Try)):
                for part in (n.body, n.orelse, getattr(n, "finalbody", [])):
                    self._collect(part, syms, package)
                for h in getattr(n, "handlers", []):
                    self._collect(h.body, syms, package)

    def thing(self, module, nodes):
        """What a stub symbol is: ("mod", name), ("class", module, ClassDef),
        ("func", [defs]) or ("other",)."""
        n = nodes[0]
        if isinstance(n, tuple):
            if n[0] == "module":
                return ("mod", n[1])
            m = self.module(n[1])
            if m is not None and n[2] in m:
                return self.thing(n[1], m[n[2]])
            return ("mod", n[1] + "." + n[2]) if self.module(n[1] + "." + n[2]) else ("other",)
        if isinstance(n, ast.ClassDef):
            return ("class", module, n)
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)):
            return ("func", nodes)
        return ("other",)

    def members(self, module, cls, seen=None):
        """{name: [nodes]} of a class with its bases' (bases resolved in its module)."""
        seen = seen or set()
        if id(cls) in seen:
            return {}
        seen.add(id(cls))
        out = {}
        self._collect(cls.body, out, module)
        for b in cls.bases:
            if isinstance(b, ast.Name):
                syms = self.module(module) or {}
                if b.id in syms:
                    t = self.thing(module, syms[b.id])
                    if t[0] == "class":
                        for k, v in self.members(t[1], t[2], seen).items():
                            out.setdefault(k, v)
        return out


def _accepts(defs, npos, kws, method):
    """True if one of the overloads takes npos positional arguments and these keywords."""
    for d in defs:
        a = d.args
        params = a.posonlyargs + a.args
        if method and params:
            params = params[1:]
        named = {x.arg for x in a.args + a.kwonlyargs}
        if (a.vararg or npos <= len(params)) and (a.kwarg or kws <= named):
            return True
    return not defs


class _Checker:
    def __init__(self, tree, stubs, rel):
        self.stubs = stubs
        self.rel = rel
        self.names = {}  # imported name -> thing
        self.inst = {}  # _key -> ("inst", module, ClassDef), None if built from two classes
        self.found = []
        self.tree = tree

    def problem(self, node, text):
        p = "%s:%d: %s" % (self.rel, node.lineno, text)
        if p not in self.found:
            self.found.append(p)

    def _walk(self, node, scope=None):
        """(node, enclosing function) for every node, in the order ast.walk would not keep."""
        for child in ast.iter_child_nodes(node):
            yield child, scope
            inner = child if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                ast.Lambda)) else scope
            yield from self._walk(child, inner)

    def run(self):
        for n, _ in self._walk(self.tree):
            if isinstance(n, ast.Import):
                for a in n.names:
                    self._import(n, a.name, a.asname or a.name.split(".")[0], None)
            elif isinstance(n, ast.ImportFrom) and not n.level:
                for a in n.names:
                    self._import(n, n.module, a.asname or a.name, a.name)
        for _ in range(2):  # objects built from port classes, and names for them (w = self.w)
            for n, scope in self._walk(self.tree):
                if isinstance(n, ast.Assign) and isinstance(n.value, (ast.Call, ast.Name,
                                                                      ast.Attribute)):
                    t = self.resolve(n.value, scope)
                    if t and t[0] == "inst":
                        for tgt in n.targets:
                            k = self._key(tgt, scope)
                            if k:
                                self.inst[k] = t if self.inst.get(k, t) == t else None
        for n, scope in self._walk(self.tree):
            if isinstance(n, ast.Attribute) and isinstance(n.ctx, ast.Load):
                self.resolve(n, scope)
            elif isinstance(n, ast.Call):
                self._call(n, scope)
        return self.found

    def _import(self, node, module, local, name):
        if module.split(".")[0] in LOCAL:
            return
        syms = self.stubs.module(module)
        if syms is None:
            self.problem(node, "imports %s, which this port does not have" % module)
            return
        if name is None:
            if local == module:
                self.names[local] = ("mod", module)
        elif name not in syms:
            self.problem(node, "%s has no %s on this port" % (module, name))
        else:
            self.names[local] = self.stubs.thing(module, syms[name])

    @staticmethod
    def _key(node, scope):
        # a local name is its function's; self.x is the module's (one class per board module)
        if isinstance(node, ast.Name):
            return (id(scope), node.id)
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
                and node.value.id == "self":
            return ("self", node.attr)
        return None

    def resolve(self, node, scope):
        """The port thing an expression stands for, or None; reports missing attributes."""
        if isinstance(node, ast.Name) and node.id in self.names:
            return self.names[node.id]
        k = self._key(node, scope)
        if k in self.inst:
            return self.inst[k]
        if isinstance(node, ast.Call):
            t = self.resolve(node.func, scope)
            return ("inst", t[1], t[2]) if t and t[0] == "class" else None
        if not isinstance(node, ast.Attribute):
            return None
        base = self.resolve(node.value, scope)
        if base is None or base[0] not in ("mod", "class", "inst"):
            return None
        if base[0] == "mod":
            syms, owner, module = self.stubs.module(base[1]) or {}, base[1], base[1]
        else:
            syms, owner, module = self.stubs.members(base[1], base[2]), base[2].name, base[1]
        if node.attr not in syms:
            self.problem(node, "%s has no %s on this port" % (owner, node.attr))
            return None
        t = self.stubs.thing(module, syms[node.attr])
        return t + (base[0] != "mod",) if t[0] == "func" else t

    def _call(self, n, scope):
        if any(isinstance(a, ast.Starred) for a in n.args) or any(k.arg is None
                                                               for k in n.keywords):
            return
        t = self.resolve(n.func, scope)
        if t is None:
            return
        if t[0] == "class":
            m = self.stubs.members(t[1], t[2])
            defs, method, what = m.get("__init__") or m.get("__new__") or [], True, t[2].name
        elif t[0] == "func":
            defs, method, what = t[1], len(t) > 2 and t[2], t[1][0].name
        else:
            return
        kws = {k.arg for k in n.keywords}
        if not _accepts(defs, len(n.args), kws, method):
            self.problem(n, "%s() takes no such call on this port (%d positional, keywords %s)"
                         % (what, len(n.args), ", ".join(sorted(kws)) or "none"))


def check_source(text, rel, stubs):
    """Problems ("file:line: text") of one module's source against a port's Stubs."""
    return _Checker(ast.parse(text, rel), stubs, rel).run()


def check_port(port):
    """Problems of the port's board modules against its stubs."""
    stubs = Stubs(roots(port))
    found = []
    for rel in BOARDS[port]:
        with open(os.path.join(FIRMWARE, rel), encoding="utf-8") as f:
            found.extend(check_source(f.read(), rel, stubs))
    return found


def main():
    install()
    bad = 0
    for port in PORTS:
        found = check_port(port)
        for p in found:
            print("%s: %s" % (port, p))
        bad += len(found)
        print("stubcheck %s: %s" % (port, "%d problem(s)" % len(found) if found else "ok"))
    if bad:
        sys.exit(1)


if __name__ == "__main__":
    main()
