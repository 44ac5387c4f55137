"""Attribute docstrings: the string literal right under an assignment, read from source.

Python drops these at run time, yet they are where this project documents a config
field, a register bit or a constant, once. Two readers need them back: the register
map's generated document (:mod:`sidra.drivers.pcie.register_doc`) and the command
line, whose training options show their fields' docstrings as help.

pydantic can collect them itself (``use_attribute_docstrings``), but on Python 3.11
it finds each model's source by walking the interpreter's frames and asking
:func:`inspect.getmodule` of every one, which scans all loaded modules: about 70 ms
of every ``sidra`` process that imported the training options, the emulator's
profile models and the server's settings, whether or not anything read a
description. Here each module's source is parsed once, when first asked.
"""

from __future__ import annotations

import ast
import functools
import inspect
import sys
from types import ModuleType

__all__ = ["attribute_doc", "attribute_docs"]


@functools.cache
def attribute_docs(owner: type | ModuleType) -> dict[str, str]:
    """``{name: docstring}`` of the assignments in a class's or a module's own body,
    each docstring on one line (its whitespace runs joined). Kept per owner: the caller
    must not change the dict."""
    if isinstance(owner, ModuleType):
        body = _bodies(owner.__name__)[""]
    else:
        body = _bodies(owner.__module__).get(owner.__qualname__, [])
    return _docs(body)


def attribute_doc(cls: type, name: str) -> str:
    """The docstring of attribute ``name`` where ``cls`` or the nearest base class that
    declares it does ("" when none is written)."""
    for owner in cls.__mro__:
        declared = vars(owner)
        if name in declared.get("__annotations__", {}) or name in declared:
            return attribute_docs(owner).get(name, "")
    return ""


@functools.cache
def _bodies(module: str) -> dict[str, list[ast.stmt]]:
    """Every class body of ``module`` by qualified name, the module's own under ""."""
    tree = ast.parse(inspect.getsource(sys.modules[module]))
    bodies: dict[str, list[ast.stmt]] = {"": tree.body}

    def classes(prefix: str, body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.ClassDef):
                bodies[prefix + node.name] = node.body
                classes(f"{prefix}{node.name}.", node.body)

    classes("", tree.body)
    return bodies


def _docs(body: list[ast.stmt]) -> dict[str, str]:
    docs = {}
    for stmt, after in zip(body, body[1:], strict=False):
        target = stmt.targets[0] if isinstance(stmt, ast.Assign) else getattr(stmt, "target", None)
        if (
            isinstance(target, ast.Name)
            and isinstance(after, ast.Expr)
            and isinstance(after.value, ast.Constant)
            and isinstance(after.value.value, str)
        ):
            docs[target.id] = " ".join(after.value.value.split())
    return docs
