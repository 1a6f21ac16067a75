"""The layers point one way (design.md section 1): checked on the source, so a stray import fails CI."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ALLOWED = {
    "protocols": {"protocols"},
    "hardware_sim": {"protocols", "hardware_sim"},
}
NEVER = {"aiomqtt", "paho", "amqtt", "asyncio", "sqlite3", "socket"}
PROJECT = {"protocols", "hardware_sim", "services"}


def absolute_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def imported_modules(path: Path) -> set[str]:
    """Top-level names imported, with our own layers named by their folder (`lunar_gs.protocols.x` is
    `protocols`)."""
    names = set()
    for name in absolute_imports(path):
        parts = name.split(".")
        names.add(parts[1] if parts[0] == "lunar_gs" and len(parts) > 1 else parts[0])
    return names


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_pure_layers_import_only_what_they_may(layer: str) -> None:
    for path in sorted((ROOT / layer).glob("*.py")):
        imported = imported_modules(path)
        assert not (imported & PROJECT) - ALLOWED[layer], f"{path.name} imports {imported & PROJECT}"
        assert not imported & NEVER, f"{path.name} does I/O or messaging: {imported & NEVER}"


def test_our_modules_import_each_other_under_the_installed_name() -> None:
    """A bare `import services` would load a second copy of a module, or a user's own `services`."""
    for folder in ("protocols", "hardware_sim", "services", "lunar_gs", "tests", "benchmarks"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            bare = {n for n in absolute_imports(path) if n.split(".")[0] in PROJECT}
            assert not bare, f"{path.relative_to(ROOT)} imports {bare}; use lunar_gs.{next(iter(bare))}"
