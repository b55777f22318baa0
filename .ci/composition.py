#!/usr/bin/env python3
"""The core is composed, not mixed: no class in `bot/` inherits from two `bot/` classes.

Standard library only (`ast`). A base counts as a `bot/` class when its name is a class defined
anywhere in `bot/` (bases from the standard library or other packages, `ABC`, `StrEnum`,
`Protocol`, do not). Exit 1 naming every offender as `path:line: message`, 0 when there is none.

Usage: python .ci/composition.py
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "bot"


def main() -> int:
    trees = {path: ast.parse(path.read_text(encoding="utf-8")) for path in sorted(PACKAGE.rglob("*.py"))}
    own = {node.name for tree in trees.values() for node in ast.walk(tree) if isinstance(node, ast.ClassDef)}
    offenders = []
    for path, tree in trees.items():
        for node in ast.walk(tree):
            if not isinstance(node, ast.ClassDef):
                continue
            bases = [ast.unparse(b).rpartition(".")[2] for b in node.bases]
            mixed = [b for b in bases if b in own]
            if len(mixed) > 1:
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}: class {node.name} inherits from "
                                 f"{len(mixed)} bot/ classes ({', '.join(mixed)}): compose them instead")
    for line in offenders:
        print(line)
    return 1 if offenders else 0


if __name__ == "__main__":
    sys.exit(main())
