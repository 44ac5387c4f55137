"""Every ``sidra`` command the README and docs/ show names a command and options that exist.

A reader copies these lines; a renamed option or command must take its documents with it.
Command lines are read from shell blocks and from inline code; ``a|b`` names alternatives
(each must exist), ``[...]`` optional parts, and ``…`` or ``...`` elided ones.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from sidra.cli.commands import whole_command
from sidra.cli.main import app

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
OPTION = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")


def _command_lines(text: str) -> list[str]:
    """What follows ``sidra `` on each command line of ``text``: in shell blocks (a
    ``$`` prompt and a path such as ``.venv/bin/`` allowed) and in inline code."""
    lines = []
    for block in re.findall(r"```(?:sh|bash|console)?\n(.*?)```", text, re.S):
        for line in block.splitlines():
            found = re.match(r"^\s*(?:\$ )?(?:\S*/)?sidra\s+(.*)$", line)
            if found:
                lines.append(found.group(1).split(" #")[0])
    lines += re.findall(r"`(?:\S*/)?sidra ([^`]*)`", text)
    return [" ".join(line.split()) for line in lines]


def _cases() -> list[tuple[str, str]]:
    return [
        (path.name, line)
        for path in DOCUMENTS
        for line in _command_lines(path.read_text(encoding="utf-8"))
    ]


def _commands(command: Any, words: list[str]) -> list[Any]:
    """The commands ``words`` lead to from ``command`` (alternatives ``a|b`` each), or an
    AssertionError naming the word no command has. (Typer ships its own click: a group is
    told by its ``commands``.)"""
    group = getattr(command, "commands", None)
    if group is None or not words:
        return [command]
    if words[0] in ("…", "..."):  # any command of the group
        return [leaf for sub in group.values() for leaf in _commands(sub, ["…"])]
    names = words[0].strip("[]").split("|")
    assert not names[0].startswith("-") or words[0] == "--help", (
        f"'{' '.join(words)}': sidra {command.name} needs a command first"
    )
    found: list[Any] = []
    for name in names:
        assert name in group, f"sidra {command.name} has no command {name!r}"
        found += _commands(group[name], words[1:])
    return found


def test_the_documents_show_commands() -> None:
    assert len(_cases()) > 150  # the README's and the docs' lines are all read


@pytest.mark.parametrize(("document", "line"), _cases())
def test_a_documented_command_exists_with_its_options(document: str, line: str) -> None:
    commands = _commands(whole_command(app), line.split())
    for option in OPTION.findall(line):
        if option == "--help":
            continue
        assert any(
            option in (*param.opts, *param.secondary_opts)
            for command in commands
            for param in command.params
        ), f"{document}: sidra {line}: no command here takes {option}"


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: path.name)
def test_the_files_a_document_names_exist(document: Path) -> None:
    """scripts/…py, tests/…py and docs/… paths the text names, and the files its links
    point to, as a reader would open them."""
    text = document.read_text(encoding="utf-8")
    named = set(re.findall(r"(?<![\w/.])((?:scripts|tests|docs)/[\w/.-]*\w)", text))
    assert named or document.name != "README.md"
    missing = sorted(path for path in named if not (ROOT / path).exists())
    # Markdown links to files are relative to the document (anchors and URLs aside).
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    missing += [link for link in links if "://" not in link
                and not (document.parent / link).exists()]  # fmt: skip
    assert not missing, f"{document.name} names files that do not exist: {missing}"
