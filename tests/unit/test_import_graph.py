"""The import structure stays one-way: no cycles among busline's modules, and only the
composition root (and what sits above it) imports :mod:`busline.bus`.

Every import counts: inside functions, and under ``if TYPE_CHECKING:`` too. Two modules that
only name each other's types in annotations still cannot be read one without the other; where a
module needs another's shape but not the module, it names a Protocol of its own.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: Package folders and the dotted names they install as.
PACKAGES = {ROOT / "busline": "busline", ROOT / "transports": "busline.transports"}
#: Modules allowed to import busline.bus: the package's front door and the tools built on a bus.
ABOVE_THE_ROOT = (
    "busline",
    "busline.testing",
    "busline.cli",
    "busline.__main__",
)


def module_names() -> dict[str, Path]:
    """Every module of busline (transports included), by dotted name."""
    modules: dict[str, Path] = {}
    for folder, dotted in PACKAGES.items():
        for path in folder.rglob("*.py"):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join([dotted, *parts])] = path
    return modules


def _type_only(tree: ast.Module) -> set[int]:
    """The ids of import nodes inside ``if TYPE_CHECKING:`` blocks."""
    hidden: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            hidden.update(id(inner) for stmt in node.body for inner in ast.walk(stmt))
    return hidden


def imports_of(name: str, path: Path, known: set[str], runtime_only: bool = False) -> set[str]:
    """The busline modules ``name`` imports (resolving relative and ``from x import y``)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    tree = ast.parse(path.read_text())
    hidden = _type_only(tree) if runtime_only else set()
    for node in ast.walk(tree):
        if id(node) in hidden:
            continue
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base]) if base else ".".join(anchor)
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def graph(runtime_only: bool = False) -> dict[str, set[str]]:
    """Module name → the busline modules it imports."""
    modules = module_names()
    known = set(modules)
    return {name: imports_of(name, path, known, runtime_only) for name, path in modules.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in edges.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
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

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return groups


PACKAGE_FRONTS = {name for name, path in module_names().items() if path.name == "__init__.py"}


def is_package_init(name: str) -> bool:
    """A package's ``__init__`` hands its modules' names on; it is not a room of its own."""
    return name in PACKAGE_FRONTS


def test_busline_has_no_import_cycle():
    edges = graph()
    # A package's __init__ re-exports its modules; importing the package from one of its own
    # modules is not a design cycle, so package fronts are left out of the walk.
    trimmed = {
        name: {t for t in targets if not is_package_init(t)}
        for name, targets in edges.items()
        if not is_package_init(name)
    }
    assert cycles(trimmed) == []


def test_only_the_composition_root_imports_the_bus():
    importers = sorted(
        name
        for name, targets in graph().items()
        if "busline.bus" in targets
        and name not in ABOVE_THE_ROOT
        and not name.startswith(("busline.cli.", "busline.testing."))
    )
    assert importers == []


def test_every_package_is_installed():
    """pyproject lists busline's packages by hand (transports/ installs as busline.transports):
    a new package folder missing from that list would be left out of the wheel."""
    import tomllib

    listed = set(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    on_disk = {name for name, path in module_names().items() if path.name == "__init__.py"}
    assert listed == on_disk
