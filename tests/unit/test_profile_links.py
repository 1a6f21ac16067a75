"""The mission profile's real-device sections: `backend`, `link:`, `emulator:`, `extends:`, and the
clock rate a real device on its own clock allows; every refusal names the file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from lunar_gs.services.mission import DEFAULT_MISSION_FILE, SEEDS_DIR, load_mission
from lunar_gs.services.seeds import SeedError

BENCH = SEEDS_DIR / "mission-bench.yaml"


def _profile(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bench.yaml"
    path.write_text(f"extends: {DEFAULT_MISSION_FILE}\n{text}")
    return path


def test_the_bench_profile_puts_three_devices_on_emulators_it_steps() -> None:
    profile = load_mission(BENCH, rate=500)
    backends = {kind: config.backend for kind, config in profile.devices.items()}
    assert backends == {"drill": "modbus_tcp", "arm": "modbus_tcp", "container": "serial_line", "flag": "sim",
                        "power": "sim", "ascent": "sim", "relay": "sim"}
    for kind in ("drill", "arm", "container"):
        link = profile.devices[kind].effective_link()
        assert link is not None and link.time == "step"
    # what it extends comes along: the drill's layers are the mission profile's
    assert profile.devices["drill"].params == load_mission().devices["drill"].params


def test_a_real_device_on_its_own_clock_refuses_any_rate_but_1(tmp_path: Path) -> None:
    path = _profile(tmp_path, "devices:\n  drill:\n    backend: modbus_tcp\n    link:\n"
                              "      url: tcp://10.0.0.5:502\n      time: wall\n")
    assert load_mission(path, rate=1.0).devices["drill"].on_wall_clock
    with pytest.raises(SeedError) as caught:
        load_mission(path, rate=100.0)
    assert caught.value.path == str(path) and caught.value.line == 7  # the `time: wall` line
    assert "rate 1" in caught.value.message and "100" in caught.value.message


def test_a_bad_link_value_names_its_line_in_the_file_that_has_it(tmp_path: Path) -> None:
    path = _profile(tmp_path, "devices:\n  drill:\n    backend: modbus_tcp\n    link:\n"
                              "      url: tcp://10.0.0.5:502\n      word_order: middle\n")
    with pytest.raises(SeedError) as caught:
        load_mission(path)
    assert caught.value.path == str(path) and caught.value.line == 7 and "word_order" in caught.value.message


def test_a_real_backend_without_an_address_is_refused(tmp_path: Path) -> None:
    path = _profile(tmp_path, "devices:\n  container:\n    backend: serial_line\n")
    with pytest.raises(SeedError, match="needs a url"):
        load_mission(path)


def test_a_link_on_a_simulated_device_is_refused(tmp_path: Path) -> None:
    path = _profile(tmp_path, "devices:\n  flag:\n    link:\n      url: tcp://127.0.0.1:1\n")
    with pytest.raises(SeedError, match="need a real backend") as caught:
        load_mission(path)
    assert caught.value.path == str(DEFAULT_MISSION_FILE)  # `backend: sim` is written in the base file


def test_a_bad_param_in_the_base_file_names_the_base_file(tmp_path: Path) -> None:
    base = tmp_path / "base.yaml"
    base.write_text(DEFAULT_MISSION_FILE.read_text().replace("max_rpm: 200.0", "max_rmp: 200.0"))
    path = tmp_path / "bench.yaml"
    path.write_text("extends: base.yaml\ndevices:\n  arm:\n    backend: sim\n")
    with pytest.raises(SeedError) as caught:
        load_mission(path)
    assert caught.value.path == str(base) and "max_rmp" in caught.value.message


def test_a_profile_that_extends_itself_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "loop.yaml"
    path.write_text("extends: loop.yaml\n")
    with pytest.raises(SeedError, match="extends itself"):
        load_mission(path)
