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
"""A climb at least this fast (over the last few samples, in mission time) is a jam."""
CLEAR_BELOW_NM = 12.0
WINDOW = 3
"""Samples the climb is measured over."""


@dataclass
class JammedBitAlarm:
    recent: deque = field(default_factory=lambda: deque(maxlen=WINDOW))
    raised: bool = False

    def feed(self, packet: dict) -> dict | None:
        """One housekeeping packet in; an alarm message out when the alarm changes state."""
        if "torque_nm" in packet.get("missing", []):
            return None  # the sensor gave no reading in this sample
        torque, at = packet["torque_nm"], packet["sim_time"]
        self.recent.append((at, torque))
        if not self.raised and torque > HIGH_NM and len(self.recent) == WINDOW:
            (t0, q0), (t1, q1) = self.recent[0], self.recent[-1]
            if t1 > t0 and (q1 - q0) / (t1 - t0) >= RISE_NM_PER_S:
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
