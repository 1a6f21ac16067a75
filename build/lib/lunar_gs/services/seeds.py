"""Load YAML seed files into pydantic models, reporting errors with the file and line they come from.

PyYAML's composed node tree keeps a position for every mapping key and value; a pydantic error location
(`phases.2.steps.0.send.args`) is walked down that tree to the deepest node it reaches.
"""

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

ModelT = TypeVar("ModelT", bound=BaseModel)


class SeedError(ValueError):
    """A seed file that cannot be used: says which file, which line and what is wrong."""

    def __init__(self, path: Path | str, line: int | None, message: str) -> None:
        self.path = str(path)
        self.line = line
        self.message = message
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {message}")


def _locate(node: yaml.Node | None, loc: tuple[int | str, ...]) -> int | None:
    """1-based line of the deepest YAML node reachable along a pydantic error location."""
    line = node.start_mark.line + 1 if node is not None else None
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                if key_node.value == key:
                    node = value_node
                    line = key_node.start_mark.line + 1
                    break
            # a key not in the file (pydantic's union tags, a missing field) leaves us where we are
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
            line = node.start_mark.line + 1
        else:
            # pydantic adds union tags and the like to locations: skip keys that are not in the file
            continue
    return line


def load_yaml_model(path: Path | str, model: type[ModelT]) -> ModelT:
    """Parse `path` and validate it as `model`; any problem raises SeedError with file and line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SeedError(path, None, f"cannot read: {exc.strerror or exc}") from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data: Any = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else None
        raise SeedError(path, line, f"not valid YAML: {exc.problem or exc}") from None
    if not isinstance(data, dict):
        raise SeedError(path, 1, f"expected a mapping at the top, got {type(data).__name__}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"])
        count = exc.error_count()
        more = f" (and {count - 1} more problem{'s' if count > 2 else ''})" if count > 1 else ""
        raise SeedError(path, _locate(root, tuple(first["loc"])), f"{where}: {first['msg']}{more}") from None


def line_of(path: Path | str, loc: tuple[int | str, ...]) -> int | None:
    """The line of `loc` (keys and indexes from the top) in a YAML file that parses."""
    return _locate(yaml.compose(Path(path).read_text(encoding="utf-8"), Loader=yaml.SafeLoader), loc)
