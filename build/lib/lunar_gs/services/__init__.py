"""Lunar GS services: the async microservices, their shared runtime, the rehearsal runner and the CLI.

Only this layer speaks MQTT.
"""

__version__ = "0.1.0"
