"""An AMQP client from outside TradeBus's code (pika), for the bad-input test.

    amqp_outsider.py publish URL SPEC.json   publishes each message of SPEC (a JSON list of
                                             {"routing_key", "body_b64", "headers"}) to the
                                             `tradebus` topic exchange, persistent and mandatory
    amqp_outsider.py drain URL QUEUE...      takes every message from each queue and prints one JSON
                                             object: {queue: [{"reason", "from", "routing_key", "bytes"}]}
"""
import base64
import json
import sys

import pika


def text(value):
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def connect(url):
    return pika.BlockingConnection(pika.URLParameters(url))


def publish(url, spec_path):
    with open(spec_path) as f:
        spec = json.load(f)
    connection = connect(url)
    channel = connection.channel()
    channel.confirm_delivery()
    for message in spec:
        channel.basic_publish(
            exchange="tradebus",
            routing_key=message["routing_key"],
            body=base64.b64decode(message["body_b64"]),
            properties=pika.BasicProperties(
                delivery_mode=2, headers=message.get("headers") or None, message_id=message.get("message_id")
            ),
            mandatory=True,
        )
    connection.close()
    print(f"published {len(spec)}")


def drain(url, queues):
    connection = connect(url)
    channel = connection.channel()
    found = {}
    for queue in queues:
        found[queue] = []
        while True:
            try:
                method, properties, body = channel.basic_get(queue, auto_ack=True)
            except pika.exceptions.ChannelClosedByBroker:
                channel = connection.channel()  # no such queue: nothing in it
                break
            if method is None:
                break
            headers = properties.headers or {}
            found[queue].append(
                {
                    "reason": text(headers.get("x-death-reason", "")),
                    "from": text(headers.get("x-death-queue", "")),
                    "routing_key": text(headers.get("x-original-routing-key", method.routing_key)),
                    "bytes": len(body),
                }
            )
    connection.close()
    print(json.dumps(found))


if __name__ == "__main__":
    if sys.argv[1] == "publish":
        publish(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "drain":
        drain(sys.argv[2], sys.argv[3:])
    else:
        sys.exit(f"unknown command {sys.argv[1]}")
