"""The layers import one way, and no module reaches into another's private names."""
from __future__ import annotations

import ast

from tests.helpers import REPO

PACKAGES = ("freshrank", "trainer", "tfx_pipeline", "serving", "benchmarks", "schemas")


def _modules():
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            yield path, ast.parse(path.read_text(encoding="utf-8"))


def _imported(tree: ast.AST) -> set[str]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def test_the_trainer_imports_nothing_from_serving_or_the_cli_package():
    for path, tree in _modules():
        if path.relative_to(REPO).parts[0] != "trainer":
            continue
        bad = sorted(m for m in _imported(tree) if m.split(".")[0] in ("serving", "freshrank"))
        assert not bad, f"{path.relative_to(REPO)} imports {bad}: the trainer must not depend on them"


def test_no_module_imports_or_reads_a_private_name_of_another():
    problems = []
    for path, tree in _modules():
        # Names this file bound to one of the project's modules (`from serving import tensors`).
        modules = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.level > 0 or (node.module or "").split(".")[0] in PACKAGES):
                for alias in node.names:
                    if alias.name.startswith("_") and not alias.name.startswith("__"):
                        problems.append(f"{path.relative_to(REPO)}:{node.lineno} imports {alias.name}")
                    modules.add(alias.asname or alias.name)
            elif isinstance(node, ast.Import):
                modules |= {(a.asname or a.name).split(".")[0] for a in node.names if a.name.split(".")[0] in PACKAGES}
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
                    and isinstance(node.value, ast.Name) and node.value.id in modules):
                problems.append(f"{path.relative_to(REPO)}:{node.lineno} reads {node.value.id}.{node.attr}")
    assert not problems, problems
