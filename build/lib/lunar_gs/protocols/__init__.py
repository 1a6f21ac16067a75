"""The wire contract of Lunar GS: topic names, message models and codecs.

Pure by design: no I/O, no asyncio, no MQTT. Anyone writing a telemetry handler can import it alone.
"""
