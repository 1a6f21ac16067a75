"""The test kit for telemetry handlers: a pytest plugin, waits and assertions in mission time, record and
replay, and hypothesis strategies for every message of the wire contract."""
