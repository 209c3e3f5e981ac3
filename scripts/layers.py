#!/usr/bin/env python3
"""The crate's module map, checked.

Prints, and exits 1 when any is found:
- import loops between modules (a module is a file under src/, its
  `use crate::…`, `use super::…` and `crate::…::` paths the edges; a
  parent and its own children using each other is not counted);
- services (files, exec, chat, access) that reach into a door or the
  wire (wire, http, server, cli, client);
- Rust files over 600 lines, under src/ and tests/.

Usage: scripts/layers.py [--loops] [--services] [--sizes]   (all by default)
"""
import os
import re
import sys

TOP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
SRC = os.path.join(TOP, "src")
SERVICES = ("files", "exec", "chat", "access")
DOORS = ("wire", "http", "server", "cli", "client")
MAX_LINES = 600


def modules():
    """Module path (tuple) -> file, for every .rs file under src/."""
    out = {}
    for root, _, files in os.walk(SRC):
        for f in files:
            if not f.endswith(".rs"):
                continue
            path = os.path.relpath(os.path.join(root, f), SRC)
            parts = path[:-3].split(os.sep)
            if parts[-1] in ("mod", "lib", "main"):
                parts = parts[:-1]
            out[tuple(parts)] = os.path.join(root, f)
    return out


def code_of(path):
    """The file's code without comments, strings or its test module."""
    text = open(path, encoding="utf-8").read()
    text = text.split("#[cfg(test)]\nmod tests", 1)[0]
    text = re.sub(r"//[^\n]*", "", text)
    return re.sub(r'"(?:\\.|[^"\\])*"', '""', text)


def resolve(mods, here, path):
    """The longest known module a `::` path names, from module `here`."""
    parts = path.split("::")
    if parts[0] == "crate":
        base = []
        parts = parts[1:]
    elif parts[0] in ("super", "self"):
        base = list(here)
        while parts and parts[0] in ("super", "self"):
            if parts[0] == "super":
                base = base[:-1]
            parts = parts[1:]
    else:
        return None
    for n in range(len(parts), -1, -1):
        cand = tuple(base + parts[:n])
        if cand in mods:
            return cand
    return None


def edges(mods):
    out = {m: set() for m in mods}
    for m, f in mods.items():
        code = code_of(f)
        # `use a::{b, c::d}` groups: expand one level of braces.
        for use in re.findall(r"\buse\s+([^;]+);", code):
            use = re.sub(r"\s+", "", use)
            grp = re.match(r"(.*?)::\{(.*)\}$", use)
            paths = [use]
            if grp:
                paths = [grp.group(1) + "::" + p.split("::{")[0] for p in grp.group(2).split(",") if p]
            for p in paths:
                p = p.split(" as ")[0]
                t = resolve(mods, m, p)
                if related(m, t):
                    out[m].add(t)
        for p in re.findall(r"\b((?:crate|super)(?:::[A-Za-z_][A-Za-z0-9_]*)+)", code):
            t = resolve(mods, m, p)
            if related(m, t):
                out[m].add(t)
    return out


def related(m, t):
    """Whether `m` using `t` is an edge of the map: a module and the
    modules it is made of (a parent and its children, either way) are one
    room, not a loop."""
    return t is not None and t[: len(m)] != m and m[: len(t)] != t


def loops(graph):
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, found = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in graph:
        if v not in index:
            visit(v)
    return found


def name(m):
    return "::".join(m) or "crate"


def main():
    which = set(a.lstrip("-") for a in sys.argv[1:]) or {"loops", "services", "sizes"}
    mods = modules()
    graph = edges(mods)
    bad = 0
    if "loops" in which:
        for comp in loops(graph):
            bad += 1
            print("import loop:", " <-> ".join(name(m) for m in comp))
    if "services" in which:
        for m, targets in sorted(graph.items()):
            if m and m[0] in SERVICES:
                for t in sorted(targets):
                    if t and t[0] in DOORS:
                        bad += 1
                        print(f"service imports a door: {name(m)} -> {name(t)}")
    if "sizes" in which:
        files = []
        for top in ("src", "tests"):
            for root, _, names in os.walk(os.path.join(TOP, top)):
                files += [os.path.join(root, f) for f in names if f.endswith(".rs")]
        for f in sorted(files):
            n = sum(1 for _ in open(f, encoding="utf-8"))
            if n > MAX_LINES:
                bad += 1
                print(f"over {MAX_LINES} lines: {os.path.relpath(f, TOP)} ({n})")
    if bad == 0:
        print("ok:", ", ".join(sorted(which)))
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
