"""An MQTT 5 device built on Eclipse Paho (Debian's python3-paho-mqtt), for test/e2e/mqtt5-paho.test.ts.

Usage: paho_device.py HOST PORT. Prints one JSON object per step on stdout; the test reads them.
"""
import json
import sys
import threading

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

HOST, PORT = sys.argv[1], int(sys.argv[2])
TIMEOUT = 10


def say(**fields):
    print(json.dumps(fields), flush=True)


def codes(reason_codes):
    return [rc.value for rc in reason_codes] if isinstance(reason_codes, list) else reason_codes.value


def connect(client_id):
    connected = threading.Event()
    result = {}
    client = mqtt.Client(client_id=client_id, protocol=mqtt.MQTTv5)

    def on_connect(_client, _userdata, _flags, reason_code, properties):
        result["code"] = reason_code.value
        result["properties"] = properties.json() if properties else {}
        connected.set()

    def on_disconnect(_client, _userdata, reason_code, _properties=None):
        result.setdefault("disconnect", getattr(reason_code, "value", reason_code))
        connected.set()

    client.on_connect = on_connect
    client.on_disconnect = on_disconnect
    client.connect(HOST, PORT, clean_start=True)
    client.loop_start()
    connected.wait(TIMEOUT)
    return client, result


# 1. A client id that is no device id: CONNACK 0x85.
refused, result = connect("has/slash")
refused.loop_stop()
say(step="bad-id", code=result.get("code"))

# 2. A device: CONNACK 0 and what it announces.
client, result = connect("paho-dev")
say(step="connack", code=result["code"], properties=result["properties"])

# 3. Telemetry with a content type and a user property, QoS 1: PUBACKed.
props = Properties(PacketTypes.PUBLISH)
props.ContentType = "application/json"
props.UserProperty = ("site", "north")
info = client.publish("devices/paho-dev/telemetry", b'{"t":21}', qos=1, properties=props)
info.wait_for_publish(TIMEOUT)
say(step="published", done=info.is_published())

# 4. A PUBLISH the rules refuse: a PUBACK with a reason code, and the connection stays up.
info = client.publish("devices/other/telemetry", b"spoofed", qos=1)
info.wait_for_publish(TIMEOUT)
say(step="refused-publish", done=info.is_published(), connected=client.is_connected())

# 5. SUBACK, one code per filter.
subscribed = threading.Event()
granted = {}


def on_subscribe(_client, _userdata, _mid, reason_codes, _properties):
    granted["codes"] = codes(reason_codes)
    subscribed.set()


client.on_subscribe = on_subscribe
client.subscribe([("devices/paho-dev/commands/#", 1), ("devices/other/secrets", 1)])
subscribed.wait(TIMEOUT)
say(step="suback", codes=granted.get("codes"))

# 6. Still connected: one more telemetry message goes through.
info = client.publish("devices/paho-dev/telemetry", b'{"t":22}', qos=1)
info.wait_for_publish(TIMEOUT)
say(step="after", done=info.is_published(), connected=client.is_connected())
client.disconnect()
client.loop_stop()
