"""The configuration the docs show is configuration Stratus accepts.

docs/configuration.md lists every option as the code defines it. Every INI snippet in README.md and docs/**/*.md
(```ini blocks, and any other fenced block that looks like INI) loads with the real option definitions:
``stratus.conf.load``, the per-store sections of ``[image_store] enabled_backends`` and keystonemiddleware's
``[keystone_authtoken]`` (registered as the services register them); each option named exists, each value has its
option's type and choices, and no value carries a trailing ``# comment``, which oslo.config would keep as part of
the value. A commented-out option (``# name = value``) is checked as if a reader uncommented it. Inline mentions
(`` `[group] name` `` and `` `[group] name = value` ``) name existing options, with valid values where concrete.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
from oslo_config import cfg

from stratus import conf
from stratus.image import stores

ROOT = Path(__file__).parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
SECTION = re.compile(r"^\[([A-Za-z0-9_.-]+)\]\s*$")
OPTION = re.compile(r"^(#\s*)?([A-Za-z_][A-Za-z0-9_]*)\s*=(.*)$")
INLINE = re.compile(r"`\[([A-Za-z_]+)\] ([a-z_][a-z0-9_]*)(?: = ([^`]+))?`")
PLACEHOLDER = re.compile(r"…|\.\.\.|^[A-Z][A-Z_]*$")  # `= N`, `= postgresql://…`: a shape, not a value


@dataclasses.dataclass(frozen=True)
class Snippet:
    doc: str
    line: int  # of the opening fence
    text: str

    def __str__(self) -> str:
        return f"{self.doc}:{self.line}"


def _looks_like_ini(body: list[str]) -> bool:
    return any(SECTION.match(line) for line in body) and any(OPTION.match(line) for line in body)


def snippets() -> list[Snippet]:
    found = []
    for doc in DOCS:
        lines = doc.read_text().splitlines()
        fence = None
        for number, line in enumerate(lines, 1):
            if line.lstrip().startswith("```"):
                if fence is None:
                    fence, lang, body = number, line.strip()[3:].strip().lower(), []
                    continue
                if lang in ("ini", "conf", "cfg") or (lang in ("", "text") and _looks_like_ini(body)):
                    found.append(Snippet(str(doc.relative_to(ROOT)), fence, "\n".join(body)))
                fence = None
            elif fence is not None:
                body.append(line)
    return found


def _entries(snippet: Snippet) -> list[tuple[int, str, str, str]]:
    """(line, section, option, raw value) of every option line, commented-out ones uncommented."""
    entries = []
    section = "DEFAULT"
    for offset, line in enumerate(snippet.text.splitlines(), 1):
        if match := SECTION.match(line.strip()):
            section = match.group(1)
        elif match := OPTION.match(line.strip()):
            entries.append((snippet.line + offset, section, match.group(2), match.group(3).strip()))
    return entries


def _configuration(ini: Path) -> cfg.ConfigOpts:
    """The options as a running Stratus has them registered for this file."""
    loaded = conf.load([str(ini)])
    stores.register_opts(loaded)
    if "keystone_authtoken" in ini.read_text():
        from stratus.identity.keystone import KeystoneAuth

        KeystoneAuth(loaded, workers=1)  # auth_token registers its options and its auth plugin's
    if "[nova]" in ini.read_text():
        from stratus.network.server.nova import session_from_conf

        session_from_conf(loaded)  # the networking server's nova notifier registers keystoneauth's [nova] options
    return loaded


def _check(loaded: cfg.ConfigOpts, section: str, option: str) -> str | None:
    """None if ``[section] option`` exists and its value is valid, else what is wrong."""
    group = None if section == "DEFAULT" else section
    known = loaded if group is None else (loaded[group] if group in loaded else None)
    if known is None or option not in known:
        return f"[{section}] {option} is not an option"
    try:
        loaded[option] if group is None else loaded[group][option]
    except (cfg.ConfigFileValueError, ValueError) as exc:
        return f"[{section}] {option}: {exc}"
    return None


SNIPPETS = snippets()


def test_the_docs_have_ini_snippets() -> None:
    assert len(SNIPPETS) >= 5, [str(s) for s in SNIPPETS]  # the extraction finds them (images, keystone, ...)


def _problems(snippet: Snippet, tmp_path: Path) -> list[str]:
    entries = _entries(snippet)
    trailing = [f"{snippet.doc}:{line}: [{section}] {option} = {value}: a trailing comment is part of the value for "
                "oslo.config; put it on a line of its own" for line, section, option, value in entries
                if re.search(r"\s[#;]", value)]
    if trailing:
        return trailing
    ini = tmp_path / "snippet.conf"
    section, text = None, []
    for _, entry_section, option, value in entries:
        if entry_section != section:
            section = entry_section
            text.append(f"[{section}]")
        text.append(f"{option} = {value}")
    ini.write_text("\n".join(text) + "\n")
    try:
        loaded = _configuration(ini)
    except (cfg.Error, ValueError) as exc:
        return [f"{snippet}: {exc}"]
    return [f"{snippet.doc}:{line}: {problem}" for line, section, option, _ in entries
            if (problem := _check(loaded, section, option))]


@pytest.mark.parametrize("snippet", SNIPPETS, ids=str)
def test_ini_snippet_loads_with_the_real_options(snippet: Snippet, tmp_path: Path) -> None:
    problems = _problems(snippet, tmp_path)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(("text", "wrong"), [
    ("[image_store]\nshow_image_direct_url = false   # the first location\n", "trailing comment"),
    ("[DEFAULT]\n# compute_driver = fake.FakeDriver  # the default\n", "trailing comment"),
    ("[scheduler]\nmax_attempt = 3\n", "[scheduler] max_attempt is not an option"),
    ("[no_such_section]\nmax_attempts = 3\n", "[no_such_section] max_attempts is not an option"),
    ("[scheduler]\nmax_attempts = three\n", "[scheduler] max_attempts"),
    ("[libvirt]\n# virt_type = kvm | qemu\n", "Valid values are"),
    ("[image_store]\nenabled_backends = a:file\n[a]\nrbd_store_pool = images\n", "[a] rbd_store_pool is not"),
    ("[image_store]\nenabled_backends = a:nfs\n", "is not NAME:TYPE"),
    ("[keystone_authtoken]\nauth_type = password\nauth_url = http://k:5000\nusernam = nova\n",
     "usernam is not an option"),
    ("[keystone_authtoken]\ntoken_cache_time = soon\n", "token_cache_time"),
])
def test_the_snippet_check_finds_what_is_wrong(text: str, wrong: str, tmp_path: Path) -> None:
    problems = _problems(Snippet("doc.md", 1, text), tmp_path)
    assert any(wrong in p for p in problems), problems


def test_inline_options_in_the_docs_exist(tmp_path: Path) -> None:
    mentions = [(str(doc.relative_to(ROOT)), number, match.groups())
                for doc in DOCS if doc.name != "configuration.md"
                for number, line in enumerate(doc.read_text().splitlines(), 1)
                for match in INLINE.finditer(line)]
    assert len(mentions) > 20
    problems = []
    for doc, number, (section, option, value) in mentions:
        ini = tmp_path / f"{doc.replace('/', '_')}-{number}.conf"
        concrete = value is not None and not PLACEHOLDER.search(value.strip())
        ini.write_text(f"[{section}]\n{option} = {value.strip()}\n" if concrete else "")
        loaded = _configuration(ini)
        if section == "keystone_authtoken" and not concrete:
            from stratus.identity.keystone import KeystoneAuth

            KeystoneAuth(loaded, workers=1)
        if problem := _check(loaded, section, option):
            problems.append(f"{doc}:{number}: {problem}")
    assert not problems, "\n".join(problems)


def test_configuration_reference_is_current() -> None:
    doc = ROOT / "docs" / "configuration.md"
    assert doc.read_text() == conf.reference_markdown(), "regenerate: python -m stratus.conf > docs/configuration.md"
