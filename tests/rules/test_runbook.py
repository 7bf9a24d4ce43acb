"""docs/runbook.md has the section every alert's runbook_url points at, and the procedures
the on-call engineer needs; every in-page link lands on a heading."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from promtool_support import alert_rules

from dashboards.config import RUNBOOK_URL
from monitoring_support import ROOT

RUNBOOK = (ROOT / "docs" / "runbook.md").read_text()
PROCEDURES = (
    "Rollback",
    "JWT signing key",
    "Webhook encryption key ring",
    "Webhook signing secrets through the operator",
    "PostgreSQL outage and restore",
    "Redis outage",
    "Audit chain break",
    "Replaying dead letters",
)


def anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    headings = re.findall(r"^#{1,6} (.+)$", markdown, flags=re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def test_every_alert_links_to_its_own_runbook_section() -> None:
    found = anchors(RUNBOOK)
    for name, rules in alert_rules().items():
        for rule in rules:
            url = urlsplit(rule["annotations"]["runbook_url"])
            assert f"{url.scheme}://{url.netloc}{url.path}" == RUNBOOK_URL
            assert url.fragment in found, f"{name}: no section #{url.fragment} in docs/runbook.md"


def test_the_runbook_has_every_procedure() -> None:
    headings = set(re.findall(r"^#{2,4} (.+)$", RUNBOOK, flags=re.MULTILINE))
    assert set(PROCEDURES) <= headings, set(PROCEDURES) - headings


def test_every_link_inside_the_runbook_lands_on_a_heading() -> None:
    targets = set(re.findall(r"\]\(#([^)]+)\)", RUNBOOK))
    assert targets, "the runbook links its procedures"
    assert targets <= anchors(RUNBOOK), targets - anchors(RUNBOOK)
