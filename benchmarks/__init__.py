"""Benchmarks of Lunar GS: `make bench` (or `python -m benchmarks --help`).

Everything runs against a private broker on a free loopback port and drives the real services as OS
processes through their public interfaces (CLI, MQTT topics, the SQLite archive).
"""
