"""The project's layers, read from the source (imports inside functions included): no import
cycles in ``server/``, ``sessions/``, ``bridge/`` and ``demo/``; the domain (``sessions``) imports no
web or media framework and none of the others; the bridge never imports the server; only the
command line imports the demo."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("server", "sessions", "bridge", "demo")
FORBIDDEN = {
    "sessions": ("server", "bridge", "aiohttp", "aiortc", "aiohttp_jinja2", "av"),
    "bridge": ("server", "demo"),
}
# Services are called by HTTP handlers, the live socket and the command line alike: no web framework.
SERVICES_MAY_NOT = ("aiohttp", "server.state", "server.http", "server.live.socket", "server.app")
# The demo's data lives outside the serving code: only the command line reaches it.
DEMO_ENTRY = "server.cli"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    out = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            out[_module_name(path)] = path
    return out


def _imports(path: Path, name: str) -> set[str]:
    """Every module ``path`` imports (absolute names), wherever the import statement stands."""
    found: set[str] = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    type_only = {id(n) for block in ast.walk(tree) if isinstance(block, ast.If) and _is_type_checking(block.test)
                 for stmt in block.body for n in ast.walk(stmt)}
    for node in ast.walk(tree):
        if id(node) in type_only:  # annotations only: never imported at run time
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)  # "from pkg import module"
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: {m for m in _imports(path, name) if m in modules and m != name} for name, path in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, edges = work[-1]
            for nxt in edges:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph[nxt]))))
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        out.append(sorted(component))
    return out


def test_the_walker_sees_a_cycle_and_a_function_local_import() -> None:
    """Positive control: the checks below can fail."""
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []
    source = ROOT / "tests" / "test_imports.py"
    assert "ast" in _imports(source, "tests.test_imports")


def test_no_import_cycles() -> None:
    cycles = _cycles(_graph())
    assert not cycles, "import cycles: " + "; ".join(" ↔ ".join(c) for c in cycles)


def test_layers_import_only_downwards() -> None:
    modules = _modules()
    wrong = []
    for name, path in modules.items():
        top = name.split(".")[0]
        for imported in _imports(path, name):
            if imported.split(".")[0] in FORBIDDEN.get(top, ()):
                wrong.append(f"{name} imports {imported}")
            if top == "server" and imported.split(".")[0] == "demo" and name != DEMO_ENTRY:
                wrong.append(f"{name} imports {imported} (demo data is for the command line only)")
            if name.startswith("server.services") and imported.startswith(SERVICES_MAY_NOT):
                wrong.append(f"{name} imports {imported} (a service takes its Deps, not the web app)")
    assert not wrong, "\n".join(sorted(wrong))


MAX_LINES = 400


def test_no_source_file_over_400_lines() -> None:
    """A module that grows past this is asking to be split along a seam one can name (migrations
    are generated and exempt)."""
    long = {str(path.relative_to(ROOT)): n for path in _modules().values()
            if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long, f"over {MAX_LINES} lines: {long}"
