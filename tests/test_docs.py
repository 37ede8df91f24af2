"""README and docs speak of the project, not of the work that built it; their accuracy figures
are the generated results pages' (docs/results/); the hand-written manual stays short."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GENERATED = sorted((ROOT / "docs" / "results").rglob("*.md"))  # the pages and their tables
HAND_WRITTEN = [ROOT / "README.md", *sorted(p for p in (ROOT / "docs").rglob("*.md") if p not in GENERATED)]

# how a journal talks: work periods, issue numbers, borrowed machines, dates of work, a machine's own paths
NARRATION = {
    "a work period": r"\b(this|last|next|a later|an earlier|one|the same|each) (work )?session\b|\bsessions?\b",
    "an issue number": r"\bissues? #?\d+|(?<![\w/&])#\d+\b",
    "a borrowed machine": r"\b(lent|borrowed|lease[ds]?)\b|\b(this|these) machines?\b",
    "progress talk": r"\bso far\b|\bnow being\b|\bnot yet rerun\b|\bfor now\b",
    "a date of work": r"\b20\d\d-\d\d-\d\d\b|\b(January|February|March|April|May|June|July|August|September|October|"
                      r"November|December) \d{1,2}(st|nd|rd|th)?,? 20\d\d\b",
    "a machine's path": r"(?<![\w.])/(tmp|work|home|Users|root|mnt)/",
}


def _text(page: Path) -> str:
    text = page.read_text(encoding="utf-8")
    if page in GENERATED:  # the build line carries the build time by design
        text = "\n".join(line for line in text.splitlines() if not line.startswith("Built "))
    return text


@pytest.mark.parametrize("page", [*HAND_WRITTEN, *GENERATED], ids=lambda p: str(p.relative_to(ROOT)))
def test_pages_do_not_narrate_how_the_work_was_done(page):
    found = [f"{what}: {m.group(0)!r}" for what, pattern in NARRATION.items()
             for m in re.finditer(pattern, _text(page), re.I)]
    assert not found, found


def test_the_narration_check_finds_what_it_looks_for():
    planted = "Run in session 3 (issue 35, #12) on a lent H200 on 2026-11-28, so far, from /tmp/D/tiktok."
    assert re.search(NARRATION["a borrowed machine"], "the CPU build these machines keep", re.I)
    hits = {what for what, pattern in NARRATION.items() if re.search(pattern, planted, re.I)}
    assert hits == set(NARRATION)
    clean = "The study resumes from its journal; see docs/results/tiktok.md#table-2-tiktok and [x](#protocol)."
    assert not any(re.search(p, clean, re.I) for p in NARRATION.values())


ACCURACY = re.compile(r"Recall|NDCG|\b[RN]@\d+|\bHR\b")
FIGURE = re.compile(r"(?<![\d.])0\.\d{4}\b")


def accuracy_figures(text: str) -> list[str]:
    """The four-decimal figures of the lines that speak of accuracy, and of the rows of tables
    whose header does (code blocks aside: commands and their outputs)."""
    figures, in_accuracy_table = [], False
    for line in re.sub(r"```.*?```", "", text, flags=re.S).splitlines():
        if not line.startswith("|"):
            in_accuracy_table = False
        elif not in_accuracy_table and ACCURACY.search(line):
            in_accuracy_table = True
        if in_accuracy_table or ACCURACY.search(line):
            figures += FIGURE.findall(line)
    return figures


def test_every_accuracy_figure_outside_the_results_pages_is_on_one_of_them():
    """An accuracy figure (Recall, NDCG) in README or the manual is one the generated pages
    show; findings.md is the exception for its validation figures, which no page holds."""
    on_pages = set()
    for page in GENERATED:
        on_pages |= set(FIGURE.findall(page.read_text(encoding="utf-8")))
    stray = []
    for page in HAND_WRITTEN:
        if page.name != "findings.md":
            stray += [f"{page.relative_to(ROOT)}: {v}" for v in accuracy_figures(page.read_text(encoding="utf-8"))
                      if v not in on_pages]
    assert not stray, stray


def test_the_figure_check_reads_prose_and_tables():
    text = ("Speed: 0.0469 s per batch.\nLD4MRec reaches 0.1234 Recall@20.\n\n| model | R@20 |\n|---|---|\n"
            "| X | 0.4321 ± 0.0012 |\n\n| op | s |\n|---|---|\n| mm | 0.0173 |\n")
    assert accuracy_figures(text) == ["0.1234", "0.4321", "0.0012"]


def test_the_hand_written_manual_stays_short():
    words = {p.relative_to(ROOT): len(p.read_text(encoding="utf-8").split()) for p in HAND_WRITTEN}
    assert sum(words.values()) <= 12_000, words
    long_pages = {p: n for p, n in words.items() if n > 1_500}
    assert not long_pages, long_pages


def test_no_file_under_docs_names_a_path_of_the_machine_it_was_made_on():
    """The runs files and tables beside the pages too, not only the Markdown."""
    found = [f"{p.relative_to(ROOT)}: {m.group(0)}" for p in sorted((ROOT / "docs").rglob("*")) if p.is_file()
             for m in re.finditer(NARRATION["a machine's path"], p.read_text(encoding="utf-8", errors="replace"))]
    assert not found, found[:5]
