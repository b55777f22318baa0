#!/usr/bin/env python3
"""Size limits for the project's code; exit 1 naming every offender, 0 when there is none.

Standard library only (`ast`). The rules:

- a .py file has at most 400 lines (MAX_FILE_LINES);
- a function or method (`def` or `async def`, nested ones included) has at most 60 lines
  (MAX_FUNCTION_LINES), counted from its `def` line (decorators excluded) to its last line.
  A longer one passes only when it says why: its docstring, or a `#` comment on one of the
  function's first 3 lines (the `def` line and the two after it), contains the words
  "long because", e.g. `# long because the steps share a dozen locals; split, they would pass them all`.

Each offender is printed as `path:line: message`.

Usage: python .ci/sizes.py [FOLDER_OR_FILE ...]   (default: the folders in FOLDERS)
"""

from __future__ import annotations

import ast
import io
import sys
import tokenize
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = ("common", "bot", "nlu", "knowledge", "adapters", "bench")
MAX_FILE_LINES = 400
MAX_FUNCTION_LINES = 60
REASON = "long because"
REASON_LINES = 3  # the `def` line and the two after it


def _comments(source: str) -> dict[int, str]:
    """Line number -> the text of the `#` comment on that line."""
    out = {}
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            out[token.start[0]] = token.string
    return out


def _says_why(node: ast.FunctionDef | ast.AsyncFunctionDef, comments: dict[int, str]) -> bool:
    docstring = ast.get_docstring(node) or ""
    if REASON in docstring.lower():
        return True
    return any(REASON in comments.get(line, "").lower() for line in range(node.lineno, node.lineno + REASON_LINES))


def check_file(path: Path) -> list[str]:
    source = path.read_text(encoding="utf-8")
    shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    problems = []
    lines = len(source.splitlines())
    if lines > MAX_FILE_LINES:
        problems.append(f"{shown}:1: file has {lines} lines (limit {MAX_FILE_LINES})")
    tree = ast.parse(source, filename=str(path))
    comments = _comments(source)
    for node in ast.walk(tree):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        length = node.end_lineno - node.lineno + 1
        if length > MAX_FUNCTION_LINES and not _says_why(node, comments):
            problems.append(f"{shown}:{node.lineno}: function {node.name} has {length} lines (limit "
                            f"{MAX_FUNCTION_LINES} without a '{REASON}' comment or docstring)")
    return problems


def python_files(targets: list[Path]) -> list[Path]:
    files = []
    for target in targets:
        if target.is_file():
            files.append(target)
        elif target.is_dir():
            files.extend(p for p in sorted(target.rglob("*.py")) if "__pycache__" not in p.parts)
    return files


def main(argv: list[str]) -> int:
    targets = [Path(a).resolve() for a in argv] or [ROOT / f for f in FOLDERS]
    problems = [problem for path in python_files(targets) for problem in check_file(path)]
    for problem in problems:
        print(problem)
    print(f"{len(problems)} size problem(s)" if problems else "no size problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
