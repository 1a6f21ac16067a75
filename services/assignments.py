"""`name=value` words from a command line (`lunar-gs cmd ... target_depth_m=0.3`, `--param k=v`): each
value read as YAML would read it (`0.3` a number, `true` a boolean, anything else text)."""

from typing import Any

import yaml


class AssignmentError(ValueError):
    pass


def cli_value(text: str) -> Any:
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    return value if isinstance(value, str | int | float | bool) else text


def parse_assignments(items: list[str], what: str) -> dict[str, Any]:
    """`what` names the words in errors (`--param`, `argument`)."""
    values: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise AssignmentError(f"{what} {item!r}: write it as name=value")
        values[key.strip()] = cli_value(text.strip())
    return values
