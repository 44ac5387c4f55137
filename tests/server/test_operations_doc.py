"""docs/operations.md agrees with the code: its example file's keys, its role table."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from sidra.server.security import RPC_ROLES, Role
from sidra.server.security.roles import DEPLOYMENT_ROLES, JOB_ROLES, SESSION_ROLES
from sidra.server.settings import ServerSettings

DOC = (Path(__file__).resolve().parents[2] / "docs" / "operations.md").read_text(encoding="utf-8")


def example_config() -> dict[str, Any]:
    block = DOC.split("A full file", 1)[1]
    (first,) = re.findall(r"```toml\n(.*?)```", block, re.S)[:1]
    return tomllib.loads(first)


def section_model(model: type[BaseModel], key: str) -> type[BaseModel]:
    annotation = model.model_fields[key].annotation
    return next(a for a in getattr(annotation, "__args__", (annotation,)) if a is not type(None))


def test_example_config_names_every_key_and_only_known_ones() -> None:
    example = example_config()
    settable = set(ServerSettings.model_fields) - {"config"}
    assert set(example) == settable
    for key, value in example.items():
        if isinstance(value, dict):
            assert set(value) == set(section_model(ServerSettings, key).model_fields), key


@pytest.mark.parametrize("table", [RPC_ROLES, SESSION_ROLES, JOB_ROLES, DEPLOYMENT_ROLES])
def test_role_table_matches_the_code(table: Mapping[str, Role]) -> None:
    rows = dict(re.findall(r"^\| (viewer|operator|programmer|admin) \| (.*) \|$", DOC, re.M))
    for rpc, role in table.items():
        assert re.search(rf"\b{rpc}\b", rows[role.label]), (rpc, role.label)
