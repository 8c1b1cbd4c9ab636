#!/usr/bin/env python3
"""Finds import circles between the files of each crate and of the Python harness (run
by `make lint`): two files that use each other, directly or through others, are one idea
split in two or a type in the wrong place (STYLE.md, point 13). Exit status 1 with the
circles printed, 0 when there are none.

Rust: a file's module path comes from where it lies under `src/` (`a/b.rs` and
`a/b/mod.rs` are `a::b`); it uses another module when it names it through `crate::`,
`super::` or one of its own child modules (`mod x;` then `x::`). Inline `mod tests`
blocks are left out: a test module using its parent is not a circle. Python: `import x`
and `from x import` of the harness's own modules.
"""

import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CRATES = ["auth", "bus-schema", "gateway", "orders", "service-kit", "stack", "testkit", "users"]


def module_of(src, path):
    rel = os.path.relpath(path, src)[:-3].split(os.sep)
    if rel[-1] == "mod" or rel == ["lib"] or rel == ["main"]:
        rel = rel[:-1]
    return tuple(rel)


def without_test_modules(text):
    """The text with every `#[cfg(test)] mod x { ... }` block removed."""
    out, i = [], 0
    for match in re.finditer(r"#\[cfg\(test\)\]\s*(pub(\([^)]*\))?\s+)?mod\s+\w+\s*\{", text):
        if match.start() < i:
            continue
        out.append(text[i:match.start()])
        depth, j = 1, match.end()
        while j < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            j += 1
        i = j
    out.append(text[i:])
    return "".join(out)


def expand(tree):
    """The paths of a `use` tree: `crate::{a::X, b::{Y, Z}}` -> crate::a::X, crate::b::Y, ..."""
    if "{" not in tree:
        return [tree]
    head, inner = tree.split("{", 1)
    inner = inner[: inner.rfind("}")]
    parts, depth, current = [], 0, ""
    for c in inner:
        if c == "," and depth == 0:
            parts.append(current)
            current = ""
            continue
        depth += {"{": 1, "}": -1}.get(c, 0)
        current += c
    parts.append(current)
    return [p for part in parts if part for p in expand(head + part)]


def rust_edges(crate):
    src = os.path.join(ROOT, crate, "src")
    files = {}
    for dirpath, _, names in os.walk(src):
        for name in names:
            if name.endswith(".rs"):
                path = os.path.join(dirpath, name)
                files[module_of(src, path)] = path
    # main.rs and lib.rs are both the root; main.rs uses the library by the crate's name.
    modules = set(files)
    edges = {}
    for module, path in files.items():
        with open(path, encoding="utf-8") as f:
            text = re.sub(r"//[^\n]*", "", without_test_modules(f.read()))
        children = set(re.findall(r"^\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+(\w+)\s*;", text, re.M))
        targets = set()
        chains = re.findall(r"\b((?:crate|super|self|\w+)(?:::\w+)+)", text)
        for tree in re.findall(r"\buse\s+([^;]+);", text):
            chains += expand(re.sub(r"\s+", "", tree))
        for chain in chains:
            parts = chain.split("::")
            if parts[0] == "crate":
                base, rest = (), parts[1:]
            elif parts[0] == "super":
                base, rest = module[:-1], parts[1:]
                while rest and rest[0] == "super":
                    base, rest = base[:-1], rest[1:]
            elif parts[0] == "self":
                base, rest = module, parts[1:]
            elif parts[0] in children:
                base, rest = module, parts
            else:
                continue
            # The longest module the path names.
            target = None
            for n in range(len(rest), -1, -1):
                candidate = base + tuple(rest[:n])
                if candidate in modules:
                    target = candidate
                    break
            if target is not None and target != module:
                targets.add(target)
        edges[module] = targets
    return {"::".join(m) or "lib": {"::".join(t) or "lib" for t in ts} for m, ts in edges.items()}


def python_edges():
    bench = os.path.join(ROOT, "bench")
    names = {n[:-3] for n in os.listdir(bench) if n.endswith(".py")}
    edges = {}
    for name in names:
        with open(os.path.join(bench, name + ".py"), encoding="utf-8") as f:
            text = f.read()
        used = set(re.findall(r"^\s*(?:from\s+(\w+)\s+import|import\s+(\w+))", text, re.M))
        edges[name] = {m for pair in used for m in pair if m in names and m != name}
    return edges


def cycles(edges):
    """Each strongly connected group of more than one module (Tarjan)."""
    index, low, stack, on, found = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def main():
    problems = []
    for crate in CRATES:
        edges = rust_edges(crate)
        # The crate root declares every module: it may use them all, and they it.
        for group in cycles({m: {t for t in ts if t != "lib"} for m, ts in edges.items() if m != "lib"}):
            problems.append(f"{crate}: {' <-> '.join(group)}")
    for group in cycles(python_edges()):
        problems.append(f"bench (Python): {' <-> '.join(group)}")
    for p in problems:
        print("import circle: " + p)
    if problems:
        sys.exit(1)
    print(f"circles: none in {len(CRATES)} crates and the Python harness")


if __name__ == "__main__":
    main()
