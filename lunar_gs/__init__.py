"""Lunar GS, installed under one import name.

The repository keeps its layers as top-level folders (`protocols/`, `hardware_sim/`, `services/`, `seeds/`);
the package maps them under `lunar_gs` (see `[tool.setuptools.package-dir]` in pyproject.toml), so that
installing Lunar GS never shadows a user's own `services` or `protocols` package, nor is shadowed by it.
"""

__all__ = ["__version__"]

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("lunar-gs")
except PackageNotFoundError:  # imported from a checkout that was never installed
    __version__ = "0+unknown"
