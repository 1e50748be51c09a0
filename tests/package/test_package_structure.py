"""The package's shape: no import cycle between its modules, a docstring that lists what
`cafe_tf` exports, and one version."""

import ast
import re
from pathlib import Path

import pytest
import tomllib

import cafe_tf
from cafe_tf import _version

PACKAGE = Path(cafe_tf.__file__).parent
ROOT = PACKAGE.parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _import_graph():
    """{module: set of cafe_tf modules it imports}, counting imports inside functions too
    (a deferred import hides a cycle, it does not remove it)."""
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(
                        package.split(".")[: len(package.split(".")) - node.level + 1]
                        + ([base] if base else [])
                    )
                # `from package import module` imports the module; else the name's module.
                targets = [
                    f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                    for a in node.names
                ]
            else:
                continue
            edges.update(t for t in targets if t in modules and t != name)
        graph[name] = edges
    return graph


def _cycle(graph):
    """One import cycle as a list of modules, or None."""
    state, stack = {}, []

    def visit(module):
        state[module] = "open"
        stack.append(module)
        for target in sorted(graph[module]):
            if state.get(target) == "open":
                return stack[stack.index(target) :] + [target]
            if target not in state:
                found = visit(target)
                if found:
                    return found
        stack.pop()
        state[module] = "done"
        return None

    for module in sorted(graph):
        if module not in state:
            found = visit(module)
            if found:
                return found
    return None


def test_no_module_of_cafe_tf_imports_itself_back():
    """A package imports its submodules and not the other way round, and no two modules
    import each other, however indirectly."""
    graph = _import_graph()
    assert "cafe_tf.layers.cafe_embedding" in graph and graph["cafe_tf.layers.cafe_embedding"]
    cycle = _cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_cycle_finder_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set(), "c": {"b"}}) is None


def test_package_docstring_lists_exactly_what_all_exports():
    summary = cafe_tf.__doc__.split("Example:")[0]
    named = set(re.findall(r"`(\w+)`", summary))
    exported = set(cafe_tf.__all__)
    assert exported - named == set(), "in __all__ but not in the docstring"
    unexported = {n for n in named - exported if hasattr(cafe_tf, n) and not n.startswith("_")}
    assert unexported == set(), "named in the docstring as a top-level name but not in __all__"


def test_the_version_is_written_once():
    assert cafe_tf.__version__ == _version.__version__
    assert re.fullmatch(r"\d+\.\d+\.\d+\S*", cafe_tf.__version__)
    with open(ROOT / "pyproject.toml", "rb") as f:
        declared = tomllib.load(f)["project"]
    assert "version" not in declared and "version" in declared["dynamic"]
    setuptools_config = pytest.importorskip("setuptools.config.pyprojecttoml")
    project = setuptools_config.read_configuration(ROOT / "pyproject.toml")["project"]
    assert project["version"] == cafe_tf.__version__
