"""The kit as a user gets it: a fresh project that has its own `services` and `protocols` packages installs
only the built lunar-gs wheel (with its testkit extra) in a new virtual environment and runs pytest on the
tutorial's example, which passes; the same tests catch a deliberate bug in the handler."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from lunar_gs.services.runtime.broker import MosquittoProcess

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "over_torque"

OWN_PACKAGES_TEST = '''
import lunar_gs
import protocols
import services


def test_our_own_packages_are_ours_and_lunar_gs_is_the_installed_wheel():
    assert services.WHO == "the user's own services"
    assert protocols.WHO == "the user's own protocols"
    assert "site-packages" in lunar_gs.__file__
'''


@dataclass
class FreshProject:
    folder: Path
    python: Path

    def pytest(self, broker_url: str, *args: str) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "VIRTUAL_ENV"))}
        return subprocess.run([str(self.python), "-m", "pytest", "-q", "-p", "no:cacheprovider",
                               "--lunar-broker", broker_url, *args], cwd=self.folder, env=env,
                              capture_output=True, text=True, timeout=240)


def _run(*argv: str | Path, cwd: Path | None = None) -> None:
    result = subprocess.run([str(a) for a in argv], cwd=cwd, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{' '.join(map(str, argv))}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"


@pytest.fixture(scope="module")
def fresh_project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FreshProject]:
    base = tmp_path_factory.mktemp("fresh")
    wheels = base / "wheels"
    _run(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", wheels, ROOT)
    (wheel,) = wheels.glob("lunar_gs-*.whl")
    venv = base / "venv"
    _run(sys.executable, "-m", "venv", venv)
    python = venv / "bin" / "python"
    _run(python, "-m", "pip", "install", "--quiet", f"{wheel}[testkit]")
    project = base / "project"
    project.mkdir()
    for name in ("over_torque.py", "test_over_torque.py", "pytest.ini"):
        shutil.copy(EXAMPLE / name, project / name)
    for package in ("services", "protocols"):
        (project / package).mkdir()
        (project / package / "__init__.py").write_text(f'WHO = "the user\'s own {package}"\n')
    (project / "test_own_packages.py").write_text(OWN_PACKAGES_TEST)
    yield FreshProject(project, python)


def test_the_plugin_runs_the_tutorial_in_a_fresh_project(fresh_project: FreshProject,
                                                         mosquitto_session: MosquittoProcess) -> None:
    result = fresh_project.pytest(mosquitto_session.url)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "3 passed" in result.stdout, result.stdout[-2000:]


def test_the_tutorial_tests_catch_a_handler_that_measures_the_climb_in_wall_time(
        fresh_project: FreshProject, mosquitto_session: MosquittoProcess) -> None:
    handler = fresh_project.folder / "over_torque.py"
    correct = handler.read_text()
    buggy = correct.replace('torque, at = packet["torque_nm"], packet["sim_time"]',
                            'torque, at = packet["torque_nm"], packet["wall_time"]')
    assert buggy != correct, "the line the bug goes into has changed: update this test"
    handler.write_text(buggy)
    try:
        result = fresh_project.pytest(mosquitto_session.url, "-k", "nominally")
    finally:
        handler.write_text(correct)
    assert result.returncode == 1, result.stdout[-4000:]
    assert "1 failed" in result.stdout, result.stdout[-3000:]
    assert "ConditionHappened: a message on ops/" in result.stdout, result.stdout[-3000:]
    assert "happened at T+" in result.stdout, result.stdout[-3000:]
