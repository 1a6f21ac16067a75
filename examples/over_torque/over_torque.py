"""A jammed-bit alarm for the coring drill: the telemetry handler the tutorial tests.

The drill's own protection trips at 30 N·m, which stops the drill with the bit stuck in the rock. Ground
wants to know a few seconds earlier, while there is still time to retract: this handler raises an alarm
when the torque is high *and* climbing fast, which a bit working through hard rock never does (its torque
settles) and a jamming bit does. It clears once the torque is back down.

It is plain MQTT and JSON: it knows nothing of Lunar GS but the topic and the packet's fields.
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass, field
from urllib.parse import urlparse

import aiomqtt

HIGH_NM = 20.0
"""Only a torque above this can be a jam."""
RISE_NM_PER_S = 1.5
"""A climb at least this fast, in mission time, is a jam."""
CLEAR_BELOW_NM = 12.0
WINDOW_S = 3.0
"""The climb is the slope of a straight line through the samples of the last few seconds of mission
time (packets come at uneven intervals, and noise must not look like a climb)..."""
MIN_SAMPLES = 3
"""...once there are at least this many."""


def slope(points) -> float:
    """Least-squares slope of torque against mission time."""
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_q = sum(q for _, q in points) / n
    spread = sum((t - mean_t) ** 2 for t, _ in points)
    return sum((t - mean_t) * (q - mean_q) for t, q in points) / spread if spread > 0 else 0.0


@dataclass
class JammedBitAlarm:
    recent: deque = field(default_factory=deque)
    raised: bool = False

    def feed(self, packet: dict) -> dict | None:
        """One housekeeping packet in; an alarm message out when the alarm changes state."""
        if "torque_nm" in packet.get("missing", []):
            return None  # the sensor gave no reading in this sample
        torque, at = packet["torque_nm"], packet["sim_time"]
        self.recent.append((at, torque))
        while at - self.recent[0][0] > WINDOW_S:
            self.recent.popleft()
        if not self.raised and torque > HIGH_NM and len(self.recent) >= MIN_SAMPLES:
            if slope(self.recent) >= RISE_NM_PER_S:
                self.raised = True
                return {"alarm": "drill_jammed_bit", "state": "raised", "torque_nm": torque, "sim_time": at}
        if self.raised and torque < CLEAR_BELOW_NM:
            self.raised = False
            return {"alarm": "drill_jammed_bit", "state": "cleared", "torque_nm": torque, "sim_time": at}
        return None


def alarm_topic(mission: str) -> str:
    return f"ops/{mission}/drill-jammed-bit"


async def run(broker_url: str, mission: str) -> None:
    """Listen to the drill's ground TM and publish the alarm's changes, until cancelled."""
    url = urlparse(broker_url)
    alarm = JammedBitAlarm()
    async with aiomqtt.Client(url.hostname or "127.0.0.1", url.port or 1883) as client:
        await client.subscribe(f"lgs/v1/{mission}/ground/lander-drill/tm/hk", qos=0)
        async for message in client.messages:
            change = alarm.feed(json.loads(message.payload))
            if change is not None:
                await client.publish(alarm_topic(mission), json.dumps(change), qos=1)
