"""The documentation describes what exists, and only what is in the repository.

Each test reads README.md and docs/ as a user would and checks one kind of claim against
the code: the commands and their options, the job settings, the connection types, the
environment variables, the states, the report's file names, the links between pages.
"""

from __future__ import annotations

import argparse
import importlib
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCS = sorted((REPO / "docs").glob("*.md"))
PAGES = [REPO / "README.md", *DOCS]


def _text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def _all_docs() -> str:
    return "\n".join(_text(p) for p in PAGES)


def _options(parser: argparse.ArgumentParser) -> set[str]:
    """Every option string of a parser and of its sub-command parsers."""
    found: set[str] = set()
    for action in parser._actions:  # noqa: SLF001 - argparse keeps no public list
        found.update(action.option_strings)
        if isinstance(action, argparse._SubParsersAction):  # noqa: SLF001
            for sub in action.choices.values():
                found |= _options(sub)
    return found


def _code(text: str) -> list[str]:
    """What a user would type: fenced and indented code lines, and inline code spans."""
    lines: list[str] = []
    fence: str | None = None  # the open fence's language; "text" blocks show output
    for line in text.splitlines():
        if line.startswith("```"):
            fence = None if fence is not None else line[3:].strip()
        elif fence is not None:
            if fence != "text":
                lines.append(line)
        elif line.startswith("    "):
            lines.append(line)
        else:
            lines.extend(re.findall(r"`([^`]+)`", line))
    return lines


def _command_options() -> dict[str, set[str]]:
    from sharelift.cli import COMMANDS

    out = {}
    for name, (module, _help) in COMMANDS.items():
        parser = argparse.ArgumentParser(prog=f"sharelift {name}")
        importlib.import_module(module).add_arguments(parser)
        out[name] = _options(parser)
    return out


def test_the_docs_refer_to_nothing_outside_the_repository() -> None:
    scanned = [
        *PAGES,
        REPO / "bench" / "README.md",
        *(REPO / "include" / "sharelift").rglob("*.py"),
        *(REPO / "dags").glob("*.py"),
        *(REPO / "plugins").glob("*.py"),
    ]
    outside = re.compile(r"\.\./shared|\bSPEC\b|SPEC\.md|NOTES\.md|STYLE\.md")
    offenders = [
        f"{p.relative_to(REPO)}:{n}: {line.strip()}"
        for p in scanned
        for n, line in enumerate(_text(p).splitlines(), 1)
        if outside.search(line)
    ]
    assert offenders == []


def _anchors(page: Path) -> set[str]:
    """GitHub's heading anchors, plus explicit <a id="..."> ones."""
    text = _text(page)
    anchors = set(re.findall(r'<a id="([^"]+)"', text))
    for heading in re.findall(r"^#+ (.+)$", text, re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        anchors.add(slug)
    return anchors


def test_every_link_between_pages_leads_to_a_file_and_heading_that_exist() -> None:
    broken = []
    for page in PAGES:
        for target in re.findall(r"\]\(([^)\s]+)\)", _text(page)):
            if "://" in target:
                continue
            file_part, _, anchor = target.partition("#")
            dest = (page.parent / file_part).resolve() if file_part else page
            if not dest.exists():
                broken.append(f"{page.name}: {target} (no such file)")
            elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
                broken.append(f"{page.name}: {target} (no such heading)")
    assert broken == []


def test_every_command_is_documented_and_every_documented_option_exists() -> None:
    options = _command_options()
    commands_page = _text(REPO / "docs" / "commands.md")
    undocumented = [c for c in options if f"`sharelift {c}" not in commands_page]
    assert undocumented == []

    invocation = re.compile(r"^(?:\$ )?(?:[A-Z_]+=\S+ )*(?:\S*/)?sharelift ([a-z][a-z-]*)(.*)$")
    wrong = []
    for page in PAGES:
        for line in _code(_text(page)):
            m = invocation.match(line.split(" #")[0].strip())
            if m is None:
                continue
            name, rest = m.group(1), m.group(2)
            if name not in options:
                wrong.append(f"{page.name}: unknown command in {line.strip()!r}")
                continue
            for flag in re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", rest):
                if flag not in options[name]:
                    wrong.append(f"{page.name}: sharelift {name} has no {flag}")
    assert wrong == []


def test_the_settings_table_lists_exactly_the_params_and_job_file_fields() -> None:
    from sharelift.airflow.dag_factory import migration_params
    from sharelift.airflow.job_files import ALLOWED_KEYS

    existing = set(migration_params()) | ALLOWED_KEYS
    jobs_page = _text(REPO / "docs" / "jobs.md")
    table = jobs_page.split("## Settings", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| `([a-z_]+)` \|", table, re.M))
    assert documented == existing


def test_every_connection_type_is_documented() -> None:
    from sharelift.airflow.connections import DESTINATION_TYPES, SOURCE_TYPES

    page = _text(REPO / "docs" / "addresses.md")
    missing = [t for t in [*SOURCE_TYPES, *DESTINATION_TYPES] if f"`{t}`" not in page]
    assert missing == []


def test_every_environment_variable_the_product_reads_is_documented_and_no_other() -> None:
    code = "\n".join(
        _text(p) for p in (REPO / "include" / "sharelift").rglob("*.py") if "testbed" not in p.parts
    )
    read = set(re.findall(r"\bSHARELIFT_[A-Z_]+\b", code))
    documented = set(re.findall(r"\bSHARELIFT_[A-Z_]+\b", _all_docs()))
    configuration = _text(REPO / "docs" / "configuration.md")
    assert sorted(v for v in read if f"`{v}`" not in configuration) == []
    assert sorted(documented - read) == []


def test_every_state_is_documented() -> None:
    from sharelift.engine.states import run_state_mapping

    page = _text(REPO / "docs" / "states.md")
    assert [s for s in run_state_mapping() if f"**{s}**" not in page] == []


@pytest.mark.parametrize("kind", ["total", "completed", "error", "summary", "summary_text"])
def test_the_report_page_names_each_file_of_the_report(kind: str) -> None:
    from sharelift.engine.report import REPORT_ROOT, list_names

    page = _text(REPO / "docs" / "reports.md")
    assert REPORT_ROOT in page
    assert list_names("<job>")[kind] in page
