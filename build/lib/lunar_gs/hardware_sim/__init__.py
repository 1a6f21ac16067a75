"""Simulated lander, ascender and relay devices behind the hardware-abstraction layer.

Pure: no asyncio, no MQTT, no I/O, no wall clock. Models step in simulated time via `advance(now)`;
services obtain devices only through `hardware_sim.backends.build_device`.
"""
