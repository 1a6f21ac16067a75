"""Options of the integration tests.

`--fuzz-messages N` sets how many bad messages the hostile-input test sends while a rehearsal runs
(default 10,000, the CI run). A longer run, e.g. `--fuzz-messages 100000`, slows the rehearsal down so
that the fuzz still fits inside it. Pass the option together with a path under tests/integration (this
conftest is read when that directory is named on the command line):

    .venv/bin/python -m pytest tests/integration/test_hostile_input.py --fuzz-messages 100000
"""

from __future__ import annotations

import pytest

DEFAULT_FUZZ_MESSAGES = 10_000


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--fuzz-messages",
        action="store",
        type=int,
        default=DEFAULT_FUZZ_MESSAGES,
        help=f"bad messages the hostile-input test sends during a rehearsal (default {DEFAULT_FUZZ_MESSAGES})",
    )


@pytest.fixture
def fuzz_messages(request: pytest.FixtureRequest) -> int:
    """How many bad messages to send (`--fuzz-messages`), at least 100."""
    try:
        value = int(request.config.getoption("--fuzz-messages"))
    except ValueError:  # the option is not registered (conftest not read early): the CI default
        value = DEFAULT_FUZZ_MESSAGES
    return max(value, 100)
