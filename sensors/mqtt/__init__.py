"""The paho-mqtt 2.x adapter: the only package that imports paho (``client``, ``flow``; ``address`` is pure).

It connects with MQTT v5 where the broker speaks it and falls back to 3.1.1 (amqtt), over TLS for
``mqtts://`` URLs (TLS 1.2+, verified against a CA file), reconnects with backoff, re-subscribes after
every reconnect, can leave a last will, acknowledges QoS 1 messages only when the handler says they are
stored (manual ack), and lets a publisher wait until everything it sent has left (``flush``).

Each ``subscribe`` call keeps its own handler: a message goes to every handler whose filters match its
topic (``$share/<group>/`` removed before matching); a message no filter matches is acknowledged and
dropped. A QoS 1 publish the broker refuses (MQTT 5 PUBACK with a failure reason, e.g. "Not authorized"
outside the ACL) is counted in ``refused`` and logged; under 3.1.1 a broker drops it without telling.
Passwords never reach a log line or an error message: ``url`` is the address with the password masked.

A client with ``persistent_session`` keeps its session (subscriptions and queued QoS 1 messages) at the broker
for ``session_expiry_s`` after it goes away (MQTT 5; under 3.1.1 the broker's own expiry applies); a member
of a shared subscription that stays away longer gives its share back to the group.

Publishing never fails for flow control: ``publish`` waits (back-pressure) while ``max_pending`` messages are
out, while the broker's Receive Maximum of QoS 1 messages are unacknowledged (paho itself queues nothing),
or while paho's 16-bit message number would come round to one still unacknowledged. QoS 1 messages published
while the broker is away wait in paho for the reconnection; QoS 0 ones are dropped and counted in ``lost``
(never left pending). With ``redeliver_unmatched_s``, a QoS 1 message the broker acknowledged with "No matching
subscribers" (MQTT 5; e.g. Mosquitto 2.0 just restarted, before the members of a shared subscription have come
back) is published again each second for that long after its first publish, then counted in ``unmatched``.
"""

from sensors.mqtt.address import BrokerAddress, Will
from sensors.mqtt.client import Handler, MqttClient
from sensors.redaction import redact_url as redact

__all__ = ["BrokerAddress", "Handler", "MqttClient", "Will", "redact"]
