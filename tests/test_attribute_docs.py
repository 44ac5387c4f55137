"""Attribute docstrings read back from source: a class's, its bases', a module's."""

from __future__ import annotations

import sys

from pydantic import BaseModel

from sidra.drivers.attribute_docs import attribute_doc, attribute_docs
from sidra.training import SPSAOptions

LIMIT_UA = 5.0
"""A module constant's docstring,
over two lines."""

UNDOCUMENTED = 1


class Base(BaseModel):
    shared: int = 1
    """Declared on the base class."""
    plain: int = 2


class Child(Base):
    shared: int = 3  # redeclared without a docstring: the child's (none) counts
    own: float = 0.5
    """Declared on the child, µA."""

    class Inner:
        depth = 2
        """A nested class's attribute."""


def test_a_module_and_a_class_body_give_their_own_docstrings_on_one_line() -> None:
    module = attribute_docs(sys.modules[__name__])
    assert module["LIMIT_UA"] == "A module constant's docstring, over two lines."
    assert "UNDOCUMENTED" not in module and "shared" not in module
    assert attribute_docs(Base) == {"shared": "Declared on the base class."}
    assert attribute_docs(Child) == {"own": "Declared on the child, µA."}
    assert attribute_docs(Child.Inner) == {"depth": "A nested class's attribute."}


def test_a_field_is_documented_where_the_nearest_class_declares_it() -> None:
    assert attribute_doc(Child, "own") == "Declared on the child, µA."
    assert attribute_doc(Child, "shared") == ""  # the child's own declaration has none
    assert attribute_doc(Base, "shared") == "Declared on the base class."
    assert attribute_doc(Child, "plain") == ""
    assert attribute_doc(Child, "missing") == ""


def test_every_training_option_reads_its_docstring_without_pydantic() -> None:
    # The command line's help for --steps comes from here (sidra.cli.options).
    assert SPSAOptions.model_fields["steps"].description is None
    doc = attribute_doc(SPSAOptions, "steps")
    assert doc and "  " not in doc and "\n" not in doc
