"""The tutorial shows the example's code whole: each file in examples/over_torque is a code block of
docs/testing-handlers.md, character for character (the fresh-project test runs those files)."""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TUTORIAL = ROOT / "docs" / "testing-handlers.md"


@pytest.mark.parametrize(("name", "language"), [("over_torque.py", "python"), ("test_over_torque.py", "python"),
                                                ("pytest.ini", "ini")])
def test_the_tutorial_shows_each_example_file_whole(name: str, language: str) -> None:
    text = TUTORIAL.read_text()
    code = (ROOT / "examples" / "over_torque" / name).read_text()
    assert f"`{name}`" in text
    assert f"```{language}\n{code}```" in text, f"docs/testing-handlers.md does not show {name} as it is"
