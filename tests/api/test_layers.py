"""The API sits on top: it calls the apps' services and selectors, and no app below imports it."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_no_lower_app_imports_the_api():
    found = []
    for app in ("csm", "accounts", "success_plans", "metrics"):
        for path in sorted((ROOT / app).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    modules = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0:
                    modules = [node.module or ""]
                else:
                    continue
                found += [(path.relative_to(ROOT).as_posix(), m) for m in modules if m.split(".")[0] == "api"]
    assert found == []
