"""The logged pyfunc code loads under every homevision version: a model registered by this
version is served by deployments that may still run an earlier one. Issue 25 moved
ValuationPyfunc out of homevision.valuation.model; a model whose logged code imported it from
the new module failed to load under 683d1b6 ("No module named homevision.valuation.pyfunc")."""

from __future__ import annotations

import ast

from homevision.config import PACKAGE_DIR


def test_the_logged_code_imports_the_pyfunc_from_where_every_version_has_it():
    logged = PACKAGE_DIR / "valuation" / "pyfunc_model.py"  # what train logs as python_model
    sources = [
        node.module
        for node in ast.walk(ast.parse(logged.read_text()))
        if isinstance(node, ast.ImportFrom)
        and any(alias.name == "ValuationPyfunc" for alias in node.names)
    ]
    assert sources == ["homevision.valuation.model"]


def test_the_old_import_path_answers_with_the_pyfunc():
    from homevision.valuation import model, pyfunc
    from homevision.valuation.model import ValuationPyfunc

    assert ValuationPyfunc is pyfunc.ValuationPyfunc is model.ValuationPyfunc
