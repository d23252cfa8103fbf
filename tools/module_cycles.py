#!/usr/bin/env python3
"""Lists import cycles between the modules of each crate's src/ (a module's `crate::x` and
`super::x` references, children folded into their top module). Exit 1 when there is a cycle.

    python3 tools/module_cycles.py
"""
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent


def top_module(src: pathlib.Path, path: pathlib.Path) -> str:
    rel = path.relative_to(src).with_suffix("")
    parts = rel.parts
    if parts[0] in ("lib", "main"):
        return "(root)"
    return parts[0]


def graph(src: pathlib.Path) -> dict:
    edges: dict = {}
    for path in src.rglob("*.rs"):
        me = top_module(src, path)
        text = re.sub(r"//[^\n]*", "", path.read_text())
        text = text.split("#[cfg(test)]")[0]
        refs = set(re.findall(r"\bcrate::(\w+)", text))
        if len(path.relative_to(src).parts) == 1 and me != "(root)":
            refs |= set(re.findall(r"\bsuper::(\w+)", text))
        edges.setdefault(me, set()).update(r for r in refs if r != me)
    return edges


def cycles(edges: dict) -> list:
    found = []
    for a, targets in edges.items():
        for b in targets:
            if a < b and a in edges.get(b, set()):
                found.append((a, b))
    # Longer cycles: depth-first search for a path back.
    def reaches(start, goal, seen):
        for n in edges.get(start, ()):
            if n == goal:
                return True
            if n not in seen:
                seen.add(n)
                if reaches(n, goal, seen):
                    return True
        return False
    longer = sorted(m for m in edges if m != "(root)" and reaches(m, m, set()))
    return found, longer


def main() -> int:
    bad = False
    crates = [ROOT / "src"] + sorted((ROOT / "crates").glob("*/src"))
    for src in crates:
        edges = graph(src)
        edges.pop("(root)", None)
        pairs, longer = cycles(edges)
        name = src.parent.name if src.parent != ROOT else "hydrowatch (binary)"
        if longer:
            bad = True
            print(f"{name}: modules in a cycle: {', '.join(longer)}; pairs: {pairs}")
        else:
            print(f"{name}: no module cycle")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
