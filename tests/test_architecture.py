"""The layout's rules, read from the source (ARCHITECTURE.md explains them).

Every module of `core`, `scoring` and `connectors` is parsed; each `import` and `from … import`
counts, at module level, inside functions and under `if TYPE_CHECKING`. Relative imports are
resolved against the importing module, and `from package import name` counts as an import of
`package.name` when that is a module. Importing `a.b.c` is counted as an import of `a.b.c` only,
not of the packages `a` and `a.b` Python also initialises: a package that re-exports its own
modules would otherwise form a cycle with each of them.

The rules:
- no import cycle between modules;
- `scoring` imports nothing from `core` or `connectors`;
- a connector imports from core only its records, errors, settings and HTTP client, and from
  connectors only the contract (`connectors.base`) and its own package; sandbox code may also
  import the shared sandboxes (`connectors.sandbox`) and the vendor sandboxes they assemble;
- core imports from connectors only the contract, `connectors.base`;
- an import inside a function is kept only for a heavy optional dependency (`LAZY_ALLOWED`);
- at most 12 modules directly inside `core/`, and no `sandbox*.py` file beside a vendor's
  connector code (its sandbox lives in `connectors/<vendor>/sandbox/`).
"""

from __future__ import annotations

import ast
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("core", "scoring", "connectors")

# What connectors may import from core: the records they produce, the errors they raise, the
# settings base their settings extend, and the HTTP client they call vendors with.
CORE_FOR_CONNECTORS = ("core.records", "core.errors", "core.settings", "core.http")

# The only packages a function may import (by top-level name), and why each must wait:
LAZY_ALLOWED = {
    # scikit-learn: seconds and ~100 MB to import; only `leadhub train` and predictive scoring
    # with a trained model need it.
    "sklearn": "scikit-learn, loaded only to train or apply the predictive model",
    # scoring.predictive wraps scikit-learn (and numpy): the scorer loads it only once a
    # predictive model is stored, so a hub without one never pays for either.
    "scoring.predictive": "the predictive model's wrapper, loaded only when a model is stored",
    # joblib ships with scikit-learn and (un)pickles its models: loaded with them.
    "joblib": "scikit-learn's model files, loaded only with scikit-learn",
    # bench: the measurement harness (outside this rule) builds synthetic worlds and the vendor
    # sandboxes; only `leadhub bench` loads it.
    "bench": "the benchmark harness, loaded only by `leadhub bench`",
}
# No entry for the browser: only tests/web/test_browser.py drives one (chromium, as a process).
CORE_TOP_LEVEL_LIMIT = 12


@dataclass(frozen=True)
class Import:
    """One imported name: `importer` (a module) imports `target` at `line`."""

    importer: str
    target: str
    line: int
    in_function: bool

    def __str__(self) -> str:
        where = " (inside a function)" if self.in_function else ""
        return f"{self.importer}:{self.line} imports {self.target}{where}"


@dataclass
class Tree:
    """The modules of a source tree and every import between them and to the outside."""

    root: Path
    modules: dict[str, Path]
    imports: list[Import]

    @classmethod
    def read(cls, root: Path, packages: Iterable[str] = PACKAGES) -> Tree:
        modules: dict[str, Path] = {}
        for package in packages:
            for path in sorted((root / package).rglob("*.py")):
                modules[module_name(path.relative_to(root))] = path
        tree = cls(root, modules, [])
        for name, path in modules.items():
            # One entry per imported module and line (`from m import a, b` imports m once).
            found = dict.fromkeys(tree._imports_of(name, path))
            tree.imports.extend(sorted(found, key=lambda i: i.line))
        return tree

    def _imports_of(self, module: str, path: Path) -> Iterator[Import]:
        is_package = path.name == "__init__.py"
        for node, in_function in _walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    yield Import(module, self.resolve(alias.name), node.lineno, in_function)
            elif isinstance(node, ast.ImportFrom):
                base = _absolute(module, is_package, node.level, node.module)
                for alias in node.names:
                    candidate = f"{base}.{alias.name}"
                    target = candidate if candidate in self.modules else self.resolve(base)
                    yield Import(module, target, node.lineno, in_function)

    def resolve(self, name: str) -> str:
        """`name`, or the module it names an attribute of (`pkg.mod.func` -> `pkg.mod`)."""
        probe = name
        while probe and probe not in self.modules:
            probe = probe.rpartition(".")[0]
        # A package's attribute is named with its module; a name outside the tree stays whole.
        return probe if probe and probe != name.split(".")[0] else name

    def first_party(self) -> list[Import]:
        return [i for i in self.imports if i.target in self.modules and i.target != i.importer]


def module_name(relative: Path) -> str:
    parts = list(relative.with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _absolute(module: str, is_package: bool, level: int, name: str | None) -> str:
    if not level:
        return name or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([name] if name else []))


def _walk(tree: ast.AST) -> Iterator[tuple[ast.AST, bool]]:
    """Every node, and whether it sits inside a function."""
    stack: list[tuple[ast.AST, bool]] = [(tree, False)]
    while stack:
        node, in_function = stack.pop()
        yield node, in_function
        inner = in_function or isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        stack.extend((child, inner) for child in ast.iter_child_nodes(node))


def _under(module: str, *prefixes: str) -> bool:
    return any(module == p or module.startswith(f"{p}.") for p in prefixes)


# -- the checks (each returns what breaks its rule, empty when the tree keeps it) ----------------


def cycles(tree: Tree) -> list[str]:
    """Each group of modules that import one another, with the imports that close the loop."""
    graph: dict[str, set[str]] = defaultdict(set)
    for i in tree.first_party():
        graph[i.importer].add(i.target)
    found = []
    for group in _strongly_connected(sorted(tree.modules), graph):
        members = set(group)
        edges = sorted(
            {str(i) for i in tree.first_party() if i.importer in members and i.target in members}
        )
        found.append(f"cycle between {', '.join(group)}:\n    " + "\n    ".join(edges))
    return found


def _strongly_connected(nodes: list[str], graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative; only the groups of more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []
    for start in nodes:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    groups.append(sorted(group))
    return sorted(groups)


def scoring_imports(tree: Tree) -> list[str]:
    return [
        str(i)
        for i in tree.imports
        if _under(i.importer, "scoring") and _under(i.target, "core", "connectors")
    ]


def _is_sandbox(module: str) -> bool:
    parts = module.split(".")
    return len(parts) > 1 and parts[0] == "connectors" and "sandbox" in parts[1:3]


def connector_imports(tree: Tree) -> list[str]:
    """Imports of connectors that reach past the contract into core or another connector."""
    broken = []
    for i in tree.imports:
        if not _under(i.importer, "connectors"):
            continue
        own = ".".join(i.importer.split(".")[:2])
        if _under(i.target, "core"):
            allowed = _under(i.target, *CORE_FOR_CONNECTORS)
        elif _under(i.target, "connectors"):
            allowed = (
                _under(i.target, "connectors.base", own)
                # every sandbox builds on the shared ones, which assemble the vendors' sandboxes
                or (_is_sandbox(i.importer) and _under(i.target, "connectors.sandbox"))
                or (_under(i.importer, "connectors.sandbox") and _is_sandbox(i.target))
            )
        else:
            allowed = True
        if not allowed:
            broken.append(str(i))
    return broken


def core_imports_of_connectors(tree: Tree) -> list[str]:
    return [
        str(i)
        for i in tree.imports
        if _under(i.importer, "core")
        and _under(i.target, "connectors")
        and not _under(i.target, "connectors.base")
    ]


def function_level_imports(tree: Tree) -> list[str]:
    return [
        str(i)
        for i in tree.imports
        if i.in_function and not any(_under(i.target, allowed) for allowed in LAZY_ALLOWED)
    ]


def core_top_level(root: Path) -> list[str]:
    files = sorted(p.name for p in (root / "core").glob("*.py"))
    if len(files) <= CORE_TOP_LEVEL_LIMIT:
        return []
    return [f"core/ holds {len(files)} modules (at most {CORE_TOP_LEVEL_LIMIT}): {files}"]


def stray_sandboxes(root: Path) -> list[str]:
    """`sandbox*.py` files in a vendor's package outside its `sandbox/` subpackage."""
    found = []
    for path in sorted((root / "connectors").rglob("sandbox*.py")):
        parts = path.relative_to(root / "connectors").parts
        if parts[0] in ("base", "sandbox") or "sandbox" in parts[:-1]:
            continue  # the contract's loader, the shared sandboxes, or inside a sandbox/
        found.append(str(path.relative_to(root)))
    return found


def _report(problems: list[str]) -> str:
    return f"{len(problems)} problem(s):\n  " + "\n  ".join(problems)


# -- the repository ------------------------------------------------------------------------------

TREE = Tree.read(ROOT)


# Violations still in the tree while the layout is being finished: each test below that fails
# for them is an expected failure until they are gone (the reasons list them).
def test_no_import_cycles() -> None:
    problems = cycles(TREE)
    assert not problems, _report(problems)


def test_scoring_imports_nothing_from_core_or_connectors() -> None:
    problems = scoring_imports(TREE)
    assert not problems, _report(problems)


def test_connectors_import_only_the_contract_and_core_basics() -> None:
    problems = connector_imports(TREE)
    assert not problems, _report(problems)


def test_core_reaches_connectors_only_through_the_contract() -> None:
    problems = core_imports_of_connectors(TREE)
    assert not problems, _report(problems)


def test_function_level_imports_only_for_heavy_optional_dependencies() -> None:
    problems = function_level_imports(TREE)
    assert not problems, _report(problems)


def test_core_has_at_most_twelve_top_level_modules() -> None:
    problems = core_top_level(ROOT)
    assert not problems, _report(problems)


def test_no_sandbox_files_beside_connector_code() -> None:
    problems = stray_sandboxes(ROOT)
    assert not problems, _report(problems)


def test_the_whole_tree_is_read() -> None:
    """Guards the checks above against passing on an empty or partial reading."""
    for module in ("core.cli.main", "core.web.app", "scoring.model", "connectors.base.contract"):
        assert module in TREE.modules
    assert any(i.in_function for i in TREE.imports)  # scikit-learn is imported lazily
    assert len(TREE.modules) > 100


# -- the checks themselves, on small trees written here ------------------------------------------


def _write(root: Path, files: dict[str, str]) -> Tree:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    for package in PACKAGES:
        (root / package).mkdir(exist_ok=True)
    return Tree.read(root)


def test_a_cycle_through_a_function_level_import_is_found(tmp_path: Path) -> None:
    tree = _write(
        tmp_path,
        {
            "core/__init__.py": "",
            "core/a.py": "from core import b\n",
            "core/b.py": "def f():\n    from . import c\n",
            "core/c.py": "import core.a as a\n",
            "core/d.py": "from core.a import thing\n",
        },
    )
    assert cycles(tree) == [
        "cycle between core.a, core.b, core.c:\n"
        "    core.a:1 imports core.b\n"
        "    core.b:2 imports core.c (inside a function)\n"
        "    core.c:1 imports core.a"
    ]
    assert function_level_imports(tree) == ["core.b:2 imports core.c (inside a function)"]


def test_relative_imports_resolve_against_the_package(tmp_path: Path) -> None:
    tree = _write(
        tmp_path,
        {
            "connectors/__init__.py": "",
            "connectors/acme/__init__.py": "from .source import Source\n",
            "connectors/acme/source.py": "from ..base import contract\nfrom ...core import x\n",
            "connectors/base/__init__.py": "",
            "connectors/base/contract.py": "",
            "core/__init__.py": "",
            "core/x.py": "",
        },
    )
    targets = {(i.importer, i.target) for i in tree.imports}
    assert ("connectors.acme", "connectors.acme.source") in targets
    assert ("connectors.acme.source", "connectors.base.contract") in targets
    assert ("connectors.acme.source", "core.x") in targets


def test_the_dependency_rule_names_each_breaking_import(tmp_path: Path) -> None:
    tree = _write(
        tmp_path,
        {
            "core/__init__.py": "",
            "core/errors.py": "",
            "core/store.py": "",
            "core/cli.py": "import connectors.base.registry\nimport connectors.acme.client\n",
            "scoring/__init__.py": "",
            "scoring/model.py": "import yaml\nfrom core.errors import ConfigError\n",
            "connectors/__init__.py": "",
            "connectors/base/__init__.py": "",
            "connectors/base/registry.py": "",
            "connectors/acme/__init__.py": "",
            "connectors/acme/client.py": (
                "from core.errors import HTTPError\nfrom core import store\n"
                "from connectors.acme import sandbox\nfrom connectors.other import x\n"
                "from connectors.sandbox import world\n"
            ),
            "connectors/acme/sandbox/__init__.py": "from connectors.sandbox import world\n",
            "connectors/sandbox/__init__.py": "",
            "connectors/sandbox/world.py": "",
            "connectors/sandbox/hub.py": "from connectors.acme.sandbox import create_app\n",
            "connectors/other/__init__.py": "",
            "connectors/other/sandbox.py": "from connectors.acme.sandbox import create_app\n",
        },
    )
    assert scoring_imports(tree) == ["scoring.model:2 imports core.errors"]
    assert connector_imports(tree) == [
        "connectors.acme.client:2 imports core.store",
        "connectors.acme.client:4 imports connectors.other",
        "connectors.acme.client:5 imports connectors.sandbox.world",
        "connectors.other.sandbox:1 imports connectors.acme.sandbox",
    ]
    assert core_imports_of_connectors(tree) == ["core.cli:2 imports connectors.acme.client"]


def test_lazy_heavy_dependencies_are_allowed_and_others_are_not(tmp_path: Path) -> None:
    tree = _write(
        tmp_path,
        {
            "scoring/__init__.py": "",
            "scoring/predictive.py": (
                "def fit():\n    from sklearn.linear_model import LogisticRegression\n"
                "    import joblib\n"
                "\n"
                "    import yaml\n"
            ),
        },
    )
    assert function_level_imports(tree) == ["scoring.predictive:5 imports yaml (inside a function)"]


def test_layout_checks(tmp_path: Path) -> None:
    _write(tmp_path, {f"core/m{n}.py": "" for n in range(13)})
    _write(
        tmp_path,
        {
            "connectors/acme/sandbox_api.py": "",
            "connectors/acme/sandbox/sandbox_data.py": "",
            "connectors/base/sandboxes.py": "",
            "connectors/sandbox/sandbox_world.py": "",
        },
    )
    assert core_top_level(tmp_path) and "13 modules" in core_top_level(tmp_path)[0]
    assert stray_sandboxes(tmp_path) == ["connectors/acme/sandbox_api.py"]
    (tmp_path / "core" / "m12.py").unlink()
    assert core_top_level(tmp_path) == []
