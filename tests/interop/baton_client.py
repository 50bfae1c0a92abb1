#!/usr/bin/env python3
"""A non-Rust service talking to Baton over Kafka: confluent-kafka + fastavro.

It plays two roles, as a real deployment would split them:
  * a *user* that submits workflows to `<prefix>ingress` and watches
    `<prefix>status` until each workflow succeeds;
  * an *agent* that registers itself once (keyed by its id; Baton forwards
    the registration to every partition's scheduler), takes the
    steps Baton assigns to it from `<prefix>assignments` and reports them
    done on `<prefix>ingress`.

Every event is a Baton envelope in Avro single-object encoding: C3 01, the
8-byte CRC-64-AVRO fingerprint of the envelope schema (little-endian), then
the Avro binary datum. The schema comes from `baton schemas --bundle`.
Workflow events are keyed by workflow id, agent events by agent id, and
partitioned with murmur2 (the Java client's default), so they land where
Baton expects them.

Prints one JSON summary line; exits 0 when every workflow succeeded.
"""

import argparse
import io
import json
import sys
import time
import uuid
from datetime import datetime, timezone

import fastavro
from confluent_kafka import Consumer, Producer

MAGIC = b"\xc3\x01"


class Codec:
    """Baton's envelope codec: Avro single-object encoding."""

    def __init__(self, schema_path):
        with open(schema_path) as f:
            self.schema = fastavro.parse_schema(json.load(f))
        # The fingerprint is of the schema's Parsing Canonical Form;
        # fastavro gives its little-endian bytes in hex.
        canonical = fastavro.schema.to_parsing_canonical_form(self.schema)
        self.header = MAGIC + bytes.fromhex(
            fastavro.schema.fingerprint(canonical, "CRC-64-AVRO")
        )

    def encode(self, record_name, payload, correlation_id, producer):
        envelope = {
            "event_id": str(uuid.uuid4()),
            "correlation_id": correlation_id,
            "causation_id": None,
            "occurred_at": datetime.now(timezone.utc),
            "producer": producer,
            # (name, value) picks the union branch explicitly.
            "payload": ("baton." + record_name, payload),
        }
        out = io.BytesIO()
        out.write(self.header)
        fastavro.schemaless_writer(out, self.schema, envelope)
        return out.getvalue()

    def decode(self, data):
        """(record name, payload) of a Baton event, or None for foreign bytes."""
        if data is None or data[:10] != self.header:
            return None
        env = fastavro.schemaless_reader(
            io.BytesIO(data[10:]), self.schema, return_record_name=True
        )
        name, payload = env["payload"]
        return name.rsplit(".", 1)[-1], payload


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--brokers", required=True)
    ap.add_argument("--topic-prefix", default="baton.")
    ap.add_argument("--schema", required=True, help="output of `baton schemas --bundle`")
    ap.add_argument("--workflows", type=int, default=3)
    ap.add_argument("--timeout", type=float, default=60.0)
    args = ap.parse_args()

    codec = Codec(args.schema)
    t = lambda name: args.topic_prefix + name  # noqa: E731
    common = {"bootstrap.servers": args.brokers}
    producer = Producer(
        {
            **common,
            "enable.idempotence": True,
            # Baton partitions by murmur2(workflow id), as the Java client does.
            "partitioner": "murmur2_random",
            "linger.ms": 1,
        }
    )
    consumer = Consumer(
        {
            **common,
            "group.id": "interop-" + uuid.uuid4().hex,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            # Low fetch wait: a few events, answered quickly.
            "fetch.wait.max.ms": 10,
        }
    )
    consumer.subscribe([t("assignments"), t("status")])

    run = uuid.uuid4().hex[:8]
    agent = f"py-agent-{run}"
    ingress = t("ingress")
    partitions = len(producer.list_topics(ingress, timeout=10).topics[ingress].partitions)
    if partitions == 0:
        sys.exit(f"topic {ingress} does not exist: start `baton run` first")

    # The agent registers once, keyed by its id: the engine partition it
    # lands on (the agent's home) forwards it to the other partitions, and
    # judges the agent's health for all of them.
    register = {
        "agent_id": agent,
        "pool": "python",
        "capabilities": ["summarise"],
        "capacity": 8,
        "weight": 1,
        "labels": {"language": "python"},
        "heartbeat_interval_ms": 60_000,
    }
    value = codec.encode("RegisterAgent", register, agent, agent)
    producer.produce(ingress, key=agent, value=value)

    workflows = [f"py-wf-{run}-{i}" for i in range(args.workflows)]
    for wf in workflows:
        step = lambda sid, deps: {  # noqa: E731
            "id": sid,
            "kind": "summarise",
            "capabilities": ["summarise"],
            "pool": "python",
            "depends_on": deps,
            "timeout_ms": 30_000,
            "retry": None,
            "priority": 0,
            "input": json.dumps({"text": "hello from python"}),
            "when": None,
        }
        submit = {
            "workflow_id": wf,
            "definition": {
                "name": "python-interop",
                "steps": [step("fetch", []), step("summarise", ["fetch"])],
                "input": None,
                "deadline_ms": None,
                "priority": 0,
                "labels": {"submitted_by": "python"},
            },
        }
        producer.produce(ingress, key=wf, value=codec.encode("SubmitWorkflow", submit, wf, "python-user"))
    producer.flush(10)

    pending = set(workflows)
    done, statuses, steps_run = {}, [], 0
    deadline = time.monotonic() + args.timeout
    while pending and time.monotonic() < deadline:
        msg = consumer.poll(0.2)
        if msg is None or msg.error():
            continue
        event = codec.decode(msg.value())
        if event is None:
            continue
        name, e = event
        if name == "StepAssigned" and e["agent_id"] == agent:
            # The agent's work: report the attempt done, keyed by workflow id.
            for report, body in (
                ("StepStarted", {}),
                ("StepSucceeded", {"output": json.dumps({"summary": "ok"}),
                                   "usage": {"tokens_in": 12, "tokens_out": 3, "cost": 0.001}}),
            ):
                payload = {"workflow_id": e["workflow_id"], "step_id": e["step_id"],
                           "attempt": e["attempt"], "agent_id": agent, **body}
                producer.produce(ingress, key=e["workflow_id"],
                                 value=codec.encode(report, payload, e["workflow_id"], agent))
            producer.flush(10)
            steps_run += 1
        elif name == "WorkflowStatusChanged" and e["workflow_id"] in pending:
            statuses.append((e["workflow_id"], e["status"]))
            if e["status"] in ("SUCCEEDED", "FAILED", "CANCELLED", "TIMED_OUT"):
                pending.discard(e["workflow_id"])
                done[e["workflow_id"]] = e["status"]

    consumer.close()
    ok = not pending and all(s == "SUCCEEDED" for s in done.values())
    print(json.dumps({
        "ok": ok,
        "agent": agent,
        "partitions": partitions,
        "steps_run": steps_run,
        "workflows": done,
        "unfinished": sorted(pending),
        "status_changes": len(statuses),
    }))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
