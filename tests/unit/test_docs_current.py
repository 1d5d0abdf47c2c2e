"""What the docs say about the code is still true where a program can tell.

- A microversion the API code branches on is served: neither ``api/microversion.py`` nor
  ``docs/api/version_history.rst`` may call it "not served yet"; 2.46 (only a signal: the request id in
  ``X-OpenStack-Request-ID`` as well) is served when the router sets both headers.
- docs/tempest.md counts the tests of the include list.
- No doc sends the reader to an issue or its closing note (readers of a checkout cannot see them).
- No doc says an ``[api] auth_strategy`` the code accepts is not implemented.
"""

from __future__ import annotations

import re
from pathlib import Path

from stratus import conf
from stratus.api import microversion

ROOT = Path(__file__).parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md")), *sorted((ROOT / "docs").rglob("*.rst"))]
NOT_SERVED = re.compile(r"not served yet", re.IGNORECASE)


def _branched_versions() -> set[str]:
    """Versions the compute API's handlers and routes compare against."""
    found: set[str] = set()
    for module in (ROOT / "stratus" / "api").glob("*.py"):
        if module.name == "microversion.py":
            continue
        text = module.read_text()
        found.update(re.findall(r'APIVersion\.parse\("(2\.\d+)"\)', text))
        found.update(re.findall(r'(?:min|max)_version="(2\.\d+)"', text))
    router = (ROOT / "stratus" / "api" / "router.py").read_text()
    if "x-openstack-request-id" in router and "x-compute-request-id" in router:
        found.add("2.46")
    # only versions the API serves (a route may name Nova's last version for it, above our maximum)
    return found & set(dict(microversion.VERSIONS))


def _history_sections() -> dict[str, str]:
    text = (ROOT / "docs" / "api" / "version_history.rst").read_text()
    parts = re.split(r"\n(2\.\d+)\n-+\n", text)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def test_served_versions_are_not_documented_as_unserved() -> None:
    branched = _branched_versions()
    assert {"2.21", "2.45", "2.46", "2.51", "2.58", "2.62"} <= branched  # the scan sees the code
    comments = dict(microversion.VERSIONS)
    sections = _history_sections()
    wrong = [f"api/microversion.py {v}: {comments[v]}" for v in sorted(branched) if NOT_SERVED.search(comments[v])]
    wrong += [f"version_history.rst {v}: {sections[v].strip()}" for v in sorted(branched)
              if NOT_SERVED.search(sections[v])]
    assert not wrong, "\n".join(wrong)


def test_2_46_is_the_request_id_headers() -> None:
    """Nova's 2.46 is the X-OpenStack-Request-ID header, not anything about instance action events."""
    for text in (dict(microversion.VERSIONS)["2.46"], _history_sections()["2.46"]):
        assert "X-OpenStack-Request-ID" in text and "X-Compute-Request-ID" in text, text


def test_tempest_doc_counts_the_include_list() -> None:
    listed = [line for line in (ROOT / "tests" / "tempest" / "include-list.txt").read_text().splitlines()
              if line.strip() and not line.lstrip().startswith("#")]
    doc = (ROOT / "docs" / "tempest.md").read_text()
    counts = [int(n) for n in re.findall(r"Today: (\d+) tests", doc)]
    assert counts == [len(listed)], (counts, len(listed))
    readme = (ROOT / "README.md").read_text()
    assert f"{len(listed)} of\n  tempest's own compute tests" in readme or f"{len(listed)} of tempest's" in readme


def test_no_doc_points_to_an_issue_the_reader_cannot_see() -> None:
    pattern = re.compile(r"closing note|\bissues? #?\d+|the [\w -]+ issues?\b", re.IGNORECASE)
    found = [f"{doc.relative_to(ROOT)}:{number}: {line.strip()}"
             for doc in DOCS for number, line in enumerate(doc.read_text().splitlines(), 1)
             if pattern.search(line)]
    assert not found, "\n".join(found)


def test_no_doc_calls_an_accepted_auth_strategy_unimplemented() -> None:
    option = next(opt for opt in conf.GROUPS["api"] if opt.name == "auth_strategy")
    choices = list(option.type.choices)
    assert "keystone" in choices
    text = " ".join(doc.read_text() for doc in DOCS)
    sentences = re.split(r"(?<=[.:;])\s", " ".join(text.split()))
    wrong = [s for s in sentences for c in choices if f"auth_strategy = {c}" in s and "not implemented" in s]
    assert not wrong, wrong
