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


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_pure_layers_import_only_what_they_may(layer: str) -> None:
    for path in sorted((ROOT / layer).glob("*.py")):
        imported = imported_modules(path)
        assert not (imported & PROJECT) - ALLOWED[layer], f"{path.name} imports {imported & PROJECT}"
        assert not imported & NEVER, f"{path.name} does I/O or messaging: {imported & NEVER}"
