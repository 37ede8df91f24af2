"""The house rules of the source tree and the docs: one folder per concern, folders that depend
one way, a thin CLI that nothing imports, the model math free of MMRec and the engine, no import
circles, and no relative link in the README or docs/ that leads nowhere."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "mmrec_ld4mrec"
CONCERNS = {"ld4mrec", "models", "engine", "mmrec", "data", "study"}
# The folders from the bottom up: each imports only from the folders before it (lazy imports
# included) and from the top-level helpers (errors, files, resources); the CLI sits above all.
FOLDER_ORDER = ["data", "ld4mrec", "models", "engine", "mmrec", "study"]
HELPERS = {"errors", "files", "resources"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every module of this package that ``path`` imports, at any depth of its code."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            candidates = [f"{target}.{a.name}" for a in node.names] + [target]
        elif isinstance(node, ast.Import):
            candidates = [a.name for a in node.names]
        else:
            continue
        for c in candidates:
            while c.startswith("mmrec_ld4mrec") and c not in MODULES:
                c = c.rpartition(".")[0]
            if c.startswith("mmrec_ld4mrec") and c != "mmrec_ld4mrec":
                found.add(c)
    return found


FILES = {module_name(p): p for p in PACKAGE.rglob("*.py")}
MODULES = set(FILES)
GRAPH = {m: imports_of(p) - {m} for m, p in FILES.items()}


def test_top_level_holds_at_most_five_modules_and_every_folder_is_a_concern():
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(top) <= 5, top
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert folders == CONCERNS


def test_no_module_imports_the_cli():
    importers = sorted(m for m, deps in GRAPH.items() if "mmrec_ld4mrec.cli" in deps)
    assert importers == []


def test_model_math_imports_nothing_from_mmrec_the_engine_or_the_harness():
    for module, deps in GRAPH.items():
        if module.startswith("mmrec_ld4mrec.ld4mrec"):
            outside = {d for d in deps if d.split(".")[1] in CONCERNS - {"ld4mrec"}}
            assert not outside, f"{module} imports {outside}"
            text = FILES[module].read_text(encoding="utf-8")
            assert not re.search(r"^\s*(from|import) (common|utils|models)\b", text, re.M), module


def rank(module: str) -> int:
    """A module's place in the folder order: -1 for the top-level helpers, the CLI above every folder."""
    part = module.split(".")[1]
    if part in HELPERS:
        return -1
    return len(FOLDER_ORDER) if part == "cli" else FOLDER_ORDER.index(part)


def folder_order_violations(graph: dict[str, set[str]]) -> list[str]:
    """Every import of a module from a folder above its own."""
    return sorted(f"{m} imports {d}" for m, deps in graph.items() if m != "mmrec_ld4mrec"
                  for d in deps if rank(d) > rank(m))


def test_folders_depend_one_way():
    assert set(FOLDER_ORDER) == CONCERNS
    assert folder_order_violations(GRAPH) == []


def test_an_upward_import_breaks_the_folder_order():
    def planted(module: str, dep: str) -> list[str]:
        graph = {**GRAPH, module: GRAPH[module] | {dep}}
        return sorted(set(folder_order_violations(graph)) - set(folder_order_violations(GRAPH)))

    pop, trainer = "mmrec_ld4mrec.models.pop", "mmrec_ld4mrec.engine.trainer"
    assert planted(pop, trainer) == [f"{pop} imports {trainer}"]
    assert planted("mmrec_ld4mrec.errors", "mmrec_ld4mrec.data.layout") == [
        "mmrec_ld4mrec.errors imports mmrec_ld4mrec.data.layout"]
    assert planted("mmrec_ld4mrec.study.bench", "mmrec_ld4mrec.engine.trainer") == []  # downward: allowed


def test_no_import_circles():
    """Depth-first search over every import, lazy ones included."""
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for dep in sorted(GRAPH.get(node, ())):
            if dep.rpartition(".")[0] == node or node == "mmrec_ld4mrec":
                continue  # a package importing its own submodule is not a circle
            if state.get(dep) == 1:
                raise AssertionError("import circle: " + " -> ".join([*path[path.index(dep):], dep]))
            if dep not in state:
                visit(dep, [*path, dep])
        state[node] = 2

    for module in sorted(GRAPH):
        if module not in state:
            visit(module, [module])


def _slug(heading: str) -> str:
    """GitHub's anchor for a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def test_every_relative_link_in_readme_and_docs_resolves():
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    broken = []
    for page in pages:
        text = page.read_text(encoding="utf-8")
        text = re.sub(r"```.*?```", "", text, flags=re.S)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target):
                continue
            path, _, anchor = target.partition("#")
            dest = (page.parent / path).resolve() if path else page
            if not dest.exists():
                broken.append(f"{page.relative_to(ROOT)}: {target}")
            elif anchor and dest.suffix == ".md":
                headings = re.findall(r"^#+ (.+)$", dest.read_text(encoding="utf-8"), re.M)
                if anchor not in {_slug(h) for h in headings}:
                    broken.append(f"{page.relative_to(ROOT)}: {target} (no such heading)")
    assert not broken, broken


def test_readme_is_a_landing_page():
    assert len((ROOT / "README.md").read_text(encoding="utf-8")) <= 10_000
