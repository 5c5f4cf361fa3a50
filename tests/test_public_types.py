"""Type checkers and IDEs see the real class of every name exported from the package root.

The root imports lazily (``__getattr__``), which a type checker reads as ``Any``; an explicit re-export
under ``if TYPE_CHECKING:`` gives it the real type. Read from the source, as a type checker reads it.
"""

from __future__ import annotations

import ast
import importlib

import airflow_provider_video_actions as package
from tests.conftest import ROOT


def type_checking_reexports() -> dict[str, str]:
    """name -> module of each ``from module import name as name`` under the root's ``if TYPE_CHECKING:``."""
    tree = ast.parse((ROOT / "airflow_provider_video_actions" / "__init__.py").read_text())
    blocks = [n for n in tree.body if isinstance(n, ast.If) and ast.unparse(n.test) == "TYPE_CHECKING"]
    return {
        alias.name: node.module
        for block in blocks
        for node in block.body
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
        if alias.asname == alias.name  # an explicit re-export; a plain import is private to a type checker
    }


def test_every_export_has_a_type_checking_reexport_from_its_module():
    assert type_checking_reexports() == package._EXPORTS


def test_the_reexported_name_is_the_object_the_lazy_import_returns():
    for name, module in type_checking_reexports().items():
        assert getattr(importlib.import_module(module), name) is getattr(package, name)
