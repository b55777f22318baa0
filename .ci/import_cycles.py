#!/usr/bin/env python3
"""Find import cycles between the project's modules; exit 1 if there is any, 0 otherwise.

Standard library only (`ast`): no module is imported, so a broken or slow import cannot hide a cycle.

Rule: every import statement anywhere in a file counts, at module level or inside a function,
a class, a `try:` or an `if TYPE_CHECKING:` block alike: an import moved into a function still
makes the two modules depend on each other, it only hides the circle from the interpreter.

- `import a.b.c` is an edge to `a.b.c` (or its longest prefix that is a project module);
- `from a.b import c` is an edge to `a.b.c` when that is a module (a submodule imported by name),
  to `a.b` otherwise; `from . import x` and other relative imports are resolved from the file;
- importing `a.b.c` also runs the packages `a` and `a.b` (their `__init__.py`): those count as edges
  too, except a package that contains the importing module (it is always being imported already);
- only modules of the walked packages count; third-party and standard-library imports are ignored.

A cycle is a strongly connected group of modules. Each group is printed with its modules and,
for each of them, the shortest circle back to itself through the group (so a pair shows
`a -> b -> a`); a group with many modules may have more circles than are listed.

Usage: python .ci/import_cycles.py [PACKAGE_DIR ...]   (default: the project's packages)
"""

from __future__ import annotations

import ast
import sys
from collections import deque
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("common", "bot", "nlu", "knowledge", "adapters")


def module_files(root: Path, packages: list[str]) -> dict[str, Path]:
    """Dotted module name -> file, for every .py file under the given package folders."""
    modules = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def _known_prefix(name: str, modules: dict[str, Path]) -> str | None:
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in modules:
            return candidate
    return None


def _with_parents(target: str, importer: str, is_package: bool, modules: dict[str, Path]) -> set[str]:
    """`target` and the packages above it that importing it runs, less the importer's own packages."""
    own = importer.split(".") if is_package else importer.split(".")[:-1]
    ancestors = {".".join(own[:i]) for i in range(1, len(own) + 1)}
    parts = target.split(".")
    out = {target}
    for end in range(1, len(parts)):
        parent = ".".join(parts[:end])
        if parent in modules and parent not in ancestors:
            out.add(parent)
    return out


def imports_of(module: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The project modules `module` imports, anywhere in its file (see the module docstring)."""
    is_package = path.name == "__init__.py"
    package = module.split(".") if is_package else module.split(".")[:-1]
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    targets: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                found = _known_prefix(alias.name, modules)
                if found:
                    targets |= _with_parents(found, module, is_package, modules)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - (node.level - 1)] if node.level > 1 else package
                source = ".".join([*base, node.module] if node.module else base)
            else:
                source = node.module or ""
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                found = submodule if submodule in modules else _known_prefix(source, modules)
                if found:
                    targets |= _with_parents(found, module, is_package, modules)
    targets.discard(module)
    return targets


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative: the groups of modules that can each reach the others."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    group = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        group.append(member)
                        if member == node:
                            break
                    if len(group) > 1:
                        groups.append(sorted(group))
    return sorted(groups)


def shortest_cycle(graph: dict[str, set[str]], start: str, within: set[str]) -> list[str]:
    """The shortest path start -> ... -> start inside `within` (breadth first)."""
    came_from: dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for child in sorted(graph[node] & within):
            if child == start:
                path = [node]
                while path[-1] != start:
                    path.append(came_from[path[-1]])
                return [*reversed(path), start]
            if child not in came_from:
                came_from[child] = node
                queue.append(child)
    return []


def _rotated(cycle: list[str]) -> tuple[str, ...]:
    ring = cycle[:-1]
    first = ring.index(min(ring))
    return tuple(ring[first:] + ring[:first])


def main(argv: list[str]) -> int:
    packages = argv or [p for p in PACKAGES if (ROOT / p).is_dir()]
    modules = module_files(ROOT, packages)
    graph = {name: imports_of(name, path, modules) for name, path in modules.items()}
    groups = strongly_connected(graph)
    for number, group in enumerate(groups, 1):
        print(f"cycle group {number}: {len(group)} modules: {', '.join(group)}")
        seen = set()
        for member in group:
            cycle = shortest_cycle(graph, member, set(group))
            if cycle and _rotated(cycle) not in seen:
                seen.add(_rotated(cycle))
                print("    " + " -> ".join(cycle))
    if groups:
        print(f"{len(groups)} import cycle group(s) among {len(modules)} modules ({', '.join(packages)})")
        return 1
    print(f"no import cycles among {len(modules)} modules ({', '.join(packages)})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
