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
    return _locate_depth(node, loc)[0]


def _locate_depth(node: yaml.Node | None, loc: tuple[int | str, ...]) -> tuple[int | None, int]:
    """(line, how many keys of `loc` the file has) of the deepest node reachable along `loc`."""
    line = node.start_mark.line + 1 if node is not None else None
    depth = 0
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                if key_node.value == key:
                    node = value_node
                    line = key_node.start_mark.line + 1
                    depth += 1
                    break
            # a key not in the file (pydantic's union tags, a missing field) leaves us where we are
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
            line = node.start_mark.line + 1
            depth += 1
        else:
            # pydantic adds union tags and the like to locations: skip keys that are not in the file
            continue
    return line, depth


def _merge(base: Any, overlay: Any) -> Any:
    """`overlay` over `base`: mappings merge key by key, anything else in the overlay replaces."""
    if isinstance(base, dict) and isinstance(overlay, dict):
        return {**base, **{k: _merge(base.get(k), v) for k, v in overlay.items()}}
    return overlay


class YamlSource:
    """A seed file, and the file it `extends` (a bench profile that changes three devices of the mission
    profile says only that): the merged data, and for any location the file and line it comes from."""

    def __init__(self, path: Path | str, extends_key: str | None = None, _chain: tuple[Path, ...] = ()) -> None:
        self.path = Path(path)
        try:
            text = self.path.read_text(encoding="utf-8")
        except OSError as exc:
            raise SeedError(self.path, None, f"cannot read: {exc.strerror or exc}") from None
        try:
            self.root = yaml.compose(text, Loader=yaml.SafeLoader)
            data: Any = yaml.safe_load(text)
        except yaml.MarkedYAMLError as exc:
            line = exc.problem_mark.line + 1 if exc.problem_mark else None
            raise SeedError(self.path, line, f"not valid YAML: {exc.problem or exc}") from None
        if not isinstance(data, dict):
            raise SeedError(self.path, 1, f"expected a mapping at the top, got {type(data).__name__}")
        self.base: YamlSource | None = None
        if extends_key is not None and extends_key in data:
            target = data.pop(extends_key)
            line = _locate(self.root, (extends_key,))
            if not isinstance(target, str):
                raise SeedError(self.path, line, f"{extends_key}: expected a file name, got {target!r}")
            base_path = (self.path.parent / target).resolve()
            if base_path in _chain or base_path == self.path.resolve():
                raise SeedError(self.path, line, f"{extends_key}: {target} extends itself")
            if not base_path.exists():
                raise SeedError(self.path, line, f"{extends_key}: no such file {base_path}")
            self.base = YamlSource(base_path, extends_key, (*_chain, self.path.resolve()))
            data = _merge(self.base.data, data)
        self.data: dict[str, Any] = data

    def locate(self, loc: tuple[int | str, ...]) -> tuple[Path, int | None]:
        """The file and line `loc` comes from: the file that holds more of it (this one on a tie)."""
        return self._locate(loc)[:2]

    def _locate(self, loc: tuple[int | str, ...]) -> tuple[Path, int | None, int]:
        line, depth = _locate_depth(self.root, loc)
        if self.base is not None:
            base = self.base._locate(loc)
            if base[2] > depth:
                return base
        return self.path, line, depth

    def error(self, loc: tuple[int | str, ...], message: str) -> SeedError:
        path, line = self.locate(loc)
        return SeedError(path, line, message)

    def validate(self, model: type[ModelT]) -> ModelT:
        try:
            return model.model_validate(self.data)
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            where = ".".join(str(p) for p in first["loc"])
            count = exc.error_count()
            more = f" (and {count - 1} more problem{'s' if count > 2 else ''})" if count > 1 else ""
            raise self.error(tuple(first["loc"]), f"{where}: {first['msg']}{more}") from None


def load_yaml_model(path: Path | str, model: type[ModelT]) -> ModelT:
    """Parse `path` and validate it as `model`; any problem raises SeedError with file and line."""
    return YamlSource(path).validate(model)


def line_of(path: Path | str, loc: tuple[int | str, ...]) -> int | None:
    """The line of `loc` (keys and indexes from the top) in a YAML file that parses."""
    return _locate(yaml.compose(Path(path).read_text(encoding="utf-8"), Loader=yaml.SafeLoader), loc)
