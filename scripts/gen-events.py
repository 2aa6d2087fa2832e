#!/usr/bin/env python3
"""Writes the sample events under events/ (see events/README.md).

The push body, delivery ids and the HMAC signatures are kept consistent here: edit this
script and run it again (`python3 scripts/gen-events.py`) rather than the JSON files.
Signatures use the test secret below, so a test that configures
GITHUB_WEBHOOK_SECRETS=spigot-test-secret sees valid deliveries.
"""

import base64
import copy
import hashlib
import hmac
import json
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent
EVENTS = ROOT / "events"

TEST_SECRET = b"spigot-test-secret"
API_ID = "a1b2c3d4e5"
REGION = "us-east-1"
HOST = f"{API_ID}.execute-api.{REGION}.amazonaws.com"
HOOK_ID = "512345678"

# Shown twice in a push: in "commits" and as "head_commit".
HEAD_COMMIT = {
    "id": "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c",
    "tree_id": "f9d2a07e9488b91af2641b26b9407fe22a451433",
    "distinct": True,
    "message": "Fix the flux capacitor \u2014 again",
    "timestamp": "2025-11-22T04:10:00+01:00",
    "url": "https://github.com/example-org/widgets/commit/0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c",
    "author": {"name": "The Octocat", "email": "octocat@example.com", "username": "octocat"},
    "committer": {"name": "GitHub", "email": "noreply@github.com", "username": "web-flow"},
    "added": [],
    "removed": [],
    "modified": ["src/flux.rs"],
}

PUSH = {
    "ref": "refs/heads/main",
    "before": "6113728f27ae82c7b1a177c8d03f9e96e0adf246",
    "after": "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c",
    "repository": {
        "id": 186853002,
        "node_id": "MDEwOlJlcG9zaXRvcnkxODY4NTMwMDI=",
        "name": "widgets",
        "full_name": "example-org/widgets",
        "private": False,
        "owner": {
            "name": "example-org",
            "login": "example-org",
            "id": 21031067,
            "type": "Organization",
        },
        "html_url": "https://github.com/example-org/widgets",
        "url": "https://github.com/example-org/widgets",
        "clone_url": "https://github.com/example-org/widgets.git",
        "ssh_url": "git@github.com:example-org/widgets.git",
        "default_branch": "main",
        "pushed_at": 1763783400,
    },
    "pusher": {"name": "octocat", "email": "octocat@example.com"},
    "organization": {"login": "example-org", "id": 21031067},
    "sender": {"login": "octocat", "id": 583231, "type": "User"},
    "created": False,
    "deleted": False,
    "forced": False,
    "base_ref": None,
    "compare": "https://github.com/example-org/widgets/compare/6113728f27ae...0d1a26e67d8f",
    "commits": [HEAD_COMMIT],
    "head_commit": HEAD_COMMIT,
}

# GitHub sends compact JSON; ensure_ascii=False keeps the UTF-8 em dash as raw bytes,
# which is what a byte-for-byte forward has to preserve.
PUSH_BODY = json.dumps(PUSH, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def signatures(body: bytes) -> dict:
    return {
        "X-Hub-Signature": "sha1=" + hmac.new(TEST_SECRET, body, hashlib.sha1).hexdigest(),
        "X-Hub-Signature-256": "sha256=" + hmac.new(TEST_SECRET, body, hashlib.sha256).hexdigest(),
    }


def github_headers(delivery: str, body: bytes, event: str = "push") -> dict:
    headers = {
        "Accept": "*/*",
        "Content-Type": "application/json",
        "Host": HOST,
        "User-Agent": "GitHub-Hookshot/5f1b2c3",
        "X-Amzn-Trace-Id": "Root=1-6921364a-2b1c9f0e4d3a5b6c7d8e9f01",
        "X-Forwarded-For": "140.82.115.54",
        "X-Forwarded-Port": "443",
        "X-Forwarded-Proto": "https",
        "X-GitHub-Delivery": delivery,
        "X-GitHub-Event": event,
        "X-GitHub-Hook-ID": HOOK_ID,
        "X-GitHub-Hook-Installation-Target-ID": "21031067",
        "X-GitHub-Hook-Installation-Target-Type": "organization",
    }
    headers.update(signatures(body))
    return dict(sorted(headers.items()))


def rest_proxy_event(
    *,
    delivery: str = "",
    body: bytes,
    state,
    path: str = "/webhook",
    resource: str = "/webhook",
    method: str = "POST",
    query=None,
    path_parameters=None,
    base64_body: bool = False,
    body_override=None,
    headers=None,
) -> dict:
    headers = headers if headers is not None else github_headers(delivery, body)
    if body_override is not None:
        body_text = body_override
    elif not body:
        body_text = None
    elif base64_body:
        body_text = base64.b64encode(body).decode("ascii")
    else:
        body_text = body.decode("utf-8")
    return {
        "resource": resource,
        "path": path,
        "httpMethod": method,
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": dict(query) if query else None,
        "multiValueQueryStringParameters": {k: [v] for k, v in query.items()} if query else None,
        "pathParameters": path_parameters,
        "stageVariables": {"spigot_state": state} if state is not None else None,
        "requestContext": {
            "resourceId": "x1y2z3",
            "resourcePath": resource,
            "httpMethod": method,
            "extendedRequestId": "Tq3pGHxkIAMEb8Q=",
            "requestTime": "22/Nov/2025:03:10:02 +0000",
            "path": "/prod" + path,
            "accountId": "123456789012",
            "protocol": "HTTP/1.1",
            "stage": "prod",
            "domainPrefix": API_ID,
            "requestTimeEpoch": 1763781002123,
            "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
            "identity": {
                "cognitoIdentityPoolId": None,
                "accountId": None,
                "cognitoIdentityId": None,
                "caller": None,
                "sourceIp": "140.82.115.54",
                "principalOrgId": None,
                "accessKey": None,
                "cognitoAuthenticationType": None,
                "cognitoAuthenticationProvider": None,
                "userArn": None,
                "userAgent": headers.get("User-Agent"),
                "user": None,
            },
            "domainName": HOST,
            "deploymentId": "k9l8m7",
            "apiId": API_ID,
        },
        "body": body_text,
        "isBase64Encoded": base64_body,
    }


GITLAB_SECRET = "spigot-gitlab-test-secret"
GITLAB_PROJECT = 42
GITLAB_JOB = 7001


def job_hook(status: str) -> bytes:
    """A Job Hook as GitLab sends it (webhook_events.md); `commit.id` is the pipeline id."""
    hook = {
        "object_kind": "build",
        "ref": "main",
        "tag": False,
        "before_sha": "0000000000000000000000000000000000000000",
        "sha": "95d49d1efbd941908580e79d65e4b5ecaf4a8305",
        "build_id": GITLAB_JOB,
        "build_name": "build",
        "build_stage": "test",
        "build_status": status,
        "build_created_at": "2025-11-22 03:00:00 UTC",
        "build_started_at": "2025-11-22 03:00:05 UTC",
        "build_finished_at": None if status == "running" else "2025-11-22 03:04:05 UTC",
        "build_duration": None if status == "running" else 240.0,
        "build_queued_duration": 5.0,
        "build_allow_failure": False,
        "build_failure_reason": "unknown_failure",
        "retries_count": 0,
        "pipeline_id": 31337,
        "project_id": GITLAB_PROJECT,
        "project_name": "demo / app",
        "user": {"id": 42, "name": "Ana Lyst", "username": "ana", "email": "[REDACTED]"},
        "commit": {"id": 31337, "name": None, "sha": "95d49d1efbd941908580e79d65e4b5ecaf4a8305",
                   "message": "Fix the build", "author_name": "Ana Lyst", "status": status},
        "repository": {"name": "app", "url": "git@gitlab.example.com:demo/app.git",
                       "homepage": "https://gitlab.example.com/demo/app"},
        "project": {"id": GITLAB_PROJECT, "name": "app", "path_with_namespace": "demo/app",
                    "web_url": "https://gitlab.example.com/demo/app", "default_branch": "main"},
        "runner": {"id": 7, "description": "docker-runner-1", "runner_type": "instance_type",
                   "active": True, "is_shared": True, "tags": ["docker"]},
        "environment": None,
    }
    return json.dumps(hook, separators=(",", ":")).encode()


def gitlab_headers(token: str = GITLAB_SECRET, event: str = "Job Hook", with_body: bool = True) -> dict:
    headers = {
        "User-Agent": "GitLab/18.5.0",
        "X-Gitlab-Event": event,
        "X-Gitlab-Instance": "https://gitlab.example.com",
        "X-Gitlab-Webhook-UUID": "1b9a1a5e-3c2d-4f1e-9a8b-7c6d5e4f3a2b",
        "X-Gitlab-Event-UUID": "9f0e8d7c-6b5a-4c3d-2e1f-0a9b8c7d6e5f",
        "Idempotency-Key": "5a4b3c2d-1e0f-4a9b-8c7d-6e5f4a3b2c1d",
        "X-Gitlab-Token": token,
    }
    if with_body:
        headers["Content-Type"] = "application/json"
    return dict(sorted(headers.items()))


def sqs_event(bodies: list) -> dict:
    return {"Records": [{
        "messageId": f"2e1424d4-f796-459a-8184-9c92662be6d{i}",
        "receiptHandle": f"AQEBwJnKyrHigUMZj6rYigCgxlaS3SLy0a{i}",
        "body": json.dumps(body, separators=(",", ":")),
        "attributes": {
            "ApproximateReceiveCount": "1",
            "SentTimestamp": "1763781002123",
            "SenderId": "AIDAIENQZJOLO23YVJ4VO",
            "ApproximateFirstReceiveTimestamp": "1763781002130",
        },
        "messageAttributes": {},
        "md5OfBody": hashlib.md5(json.dumps(body, separators=(",", ":")).encode()).hexdigest(),
        "eventSource": "aws:sqs",
        "eventSourceARN": f"arn:aws:sqs:{REGION}:123456789012:spigot-IngestQueue-1A2B3C4D5E6F",
        "awsRegion": REGION,
    } for i, body in enumerate(bodies)]}


# Port (port_runner, log_tailer): runs of the reference example action, on the topic of
# organisation org_example.
PORT_ORG = "org_example"
PORT_ACTION = "deploy_microservice_kafka"
PORT_INPUTS = {"serviceName": "my-service", "version": "1.2.3", "environment": "dev",
               "changeReason": "JIRA-42 hotfix"}


def port_legacy_envelope(run_id: str) -> dict:
    """The legacy agent envelope Port writes to ORG.runs (reference/port-api.md 5a)."""
    return {
        "action": PORT_ACTION,
        "resourceType": "run",
        "status": "TRIGGERED",
        "trigger": {"by": {"orgId": PORT_ORG, "userId": "auth0|ana",
                           "user": {"email": "ana@example.com"}},
                    "origin": "UI", "at": "2025-11-22T10:00:00.000Z"},
        "context": {"entity": None, "blueprint": "service", "runId": run_id},
        "payload": {"entity": None,
                    "action": {"invocationMethod": {"type": "KAFKA"}, "trigger": "CREATE"},
                    "properties": PORT_INPUTS, "censoredProperties": []},
    }


def kafka_event(partitions: dict, msk: bool = False) -> dict:
    """A Kafka event: {partition: [record value bytes]} of ORG.runs, self-managed or MSK."""
    topic = f"{PORT_ORG}.runs"
    records = {}
    for partition, values in partitions.items():
        records[f"{topic}-{partition}"] = [{
            "topic": topic, "partition": partition, "offset": 1500 + i,
            "timestamp": 1763805600000 + i, "timestampType": "CREATE_TIME",
            "value": base64.b64encode(value).decode(), "headers": [],
        } for i, value in enumerate(values)]
    return kafka_envelope(records, "port/1a2b3c4d-5e6f" if msk else None, "kafka.example.com:9096")


def kafka_envelope(records: dict, msk_cluster, brokers: str) -> dict:
    """The event around `records`: MSK's when an MSK cluster (name/uuid) is given, else a
    self-managed Kafka's on `brokers`."""
    if msk_cluster:
        name = msk_cluster.split("/")[0]
        return {"eventSource": "aws:kafka",
                "eventSourceArn": f"arn:aws:kafka:{REGION}:123456789012:cluster/{msk_cluster}",
                "bootstrapServers": f"b-1.{name}.abc123.c2.kafka.{REGION}.amazonaws.com:9096",
                "records": records}
    return {"eventSource": "SelfManagedKafka", "bootstrapServers": brokers, "records": records}


def compact(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def tail_checkpoint(run_id: str) -> dict:
    """port_runner's handoff to log_tailer for a queued build of the example job."""
    return {
        "version": 1, "run_id": run_id, "action": PORT_ACTION,
        "server": "sandbox", "server_url": "http://127.0.0.1:8080",
        "job": ["deploy", "microservice"],
        "queue_url": "http://127.0.0.1:8080/queue/item/1/", "build": None, "offset": 0,
        "started_at": "2025-11-22T10:00:01Z", "deadline_at": "2099-01-01T00:00:00Z",
        "abort_on_timeout": True, "index_log": False, "entity": None, "handoffs": 0,
    }


# AliECS (aliecs_ingest): protobuf messages encoded here by hand from the field layout of
# reference/aliecs-kafka.md (sections 1 and 4) — an encoder of its own, independent of
# prost and of the Rust tests' byte builders.
ALIECS_ENV = "2oDvieFrVTi"
ALIECS_T0 = 1763805600000  # 2025-11-22T10:00:00Z
OP_STARTED, OP_DONE_OK = 1, 3


def pb_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        if value == 0:
            out.append(byte)
            return bytes(out)
        out.append(byte | 0x80)


def pb_int(field: int, value: int) -> bytes:
    return pb_varint(field << 3) + pb_varint(value)


def pb_len(field: int, data) -> bytes:
    data = data.encode() if isinstance(data, str) else data
    return pb_varint(field << 3 | 2) + pb_varint(len(data)) + data


def env_info(run, state: str, detectors: list, entered: int) -> bytes:
    """kafka.EnvInfo."""
    out = pb_len(1, ALIECS_ENV)
    if run is not None:
        out += pb_int(2, run) + pb_len(3, "PHYSICS")
    out += pb_len(4, state) + b"".join(pb_len(5, d) for d in detectors)
    return out + pb_int(6, entered)


def state_notification(env: bytes, timestamp: int) -> bytes:
    """kafka.NewStateNotification."""
    return pb_len(1, env) + pb_int(2, timestamp)


def active_runs_list(envs: list, timestamp: int) -> bytes:
    """kafka.ActiveRunsList."""
    return b"".join(pb_len(1, env) for env in envs) + pb_int(2, timestamp)


def aliecs_event(ms: int, field: int, payload: bytes) -> bytes:
    """events.Event with its oneof payload in `field`."""
    return pb_int(1, ms) + pb_int(2, ms * 1_000_000) + pb_len(field, payload)


def run_event(ms: int, run: int, transition: str, status: int, state: str, user: str) -> bytes:
    """events.Event carrying an Ev_RunEvent (field 16)."""
    payload = (pb_len(1, ALIECS_ENV) + pb_int(2, run) + pb_len(3, state) + pb_len(5, transition)
               + pb_int(6, status) + pb_len(8, pb_len(3, user)))
    return aliecs_event(ms, 16, payload)


def environment_event(ms: int, run: int, state: str, transition: str, status: int) -> bytes:
    """events.Event carrying an Ev_EnvironmentEvent (field 11)."""
    payload = (pb_len(1, ALIECS_ENV) + pb_len(2, state) + pb_int(3, run) + pb_len(6, transition)
               + pb_int(8, status))
    return aliecs_event(ms, 11, payload)


def aliecs_kafka_event(records: list, msk: bool = False) -> dict:
    """A Kafka event of [(topic, value bytes)], each topic on its own partition 0."""
    grouped = {}
    for topic, value in records:
        entries = grouped.setdefault(f"{topic}-0", [])
        entries.append({
            "topic": topic, "partition": 0, "offset": 4200 + len(entries),
            "timestamp": ALIECS_T0, "timestampType": "CREATE_TIME",
            "value": base64.b64encode(value).decode(), "headers": [],
        })
    return kafka_envelope(grouped, "aliecs/9f8e7d6c-5b4a" if msk else None,
                          "alio2-cr1-kafka01.cern.ch:9092")


def write(rel: str, obj: dict) -> None:
    path = EVENTS / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {path.relative_to(ROOT)}")


def main() -> None:
    pw = "process_webhooks/"
    write(pw + "push-on.json", rest_proxy_event(
        delivery="7e1c0a10-c74f-11f0-8a3e-5d2f1a9b0c01", body=PUSH_BODY, state="ON"))
    write(pw + "push-off.json", rest_proxy_event(
        delivery="7e1c0a10-c74f-11f0-8a3e-5d2f1a9b0c02", body=PUSH_BODY, state="OFF"))
    write(pw + "proxy-path.json", rest_proxy_event(
        delivery="7e1c0a10-c74f-11f0-8a3e-5d2f1a9b0c03", body=PUSH_BODY, state="ON",
        path="/webhook/generic-webhook-trigger/invoke", resource="/webhook/{proxy+}",
        query={"token": "abc"}, path_parameters={"proxy": "generic-webhook-trigger/invoke"}))
    write(pw + "base64-body.json", rest_proxy_event(
        delivery="7e1c0a10-c74f-11f0-8a3e-5d2f1a9b0c04", body=PUSH_BODY, state="ON",
        base64_body=True))
    write(pw + "bad-base64.json", rest_proxy_event(
        delivery="7e1c0a10-c74f-11f0-8a3e-5d2f1a9b0c05", body=PUSH_BODY, state="ON",
        base64_body=True, body_override="this is not base64 %%%"))
    write(pw + "missing-state.json", rest_proxy_event(
        delivery="7e1c0a10-c74f-11f0-8a3e-5d2f1a9b0c06", body=PUSH_BODY, state=None))
    bad_sig = github_headers("7e1c0a10-c74f-11f0-8a3e-5d2f1a9b0c07", PUSH_BODY)
    bad_sig["X-Hub-Signature-256"] = "sha256=" + "0" * 64
    bad_sig["X-Hub-Signature"] = "sha1=" + "0" * 40
    write(pw + "bad-signature.json", rest_proxy_event(
        delivery="7e1c0a10-c74f-11f0-8a3e-5d2f1a9b0c07", body=PUSH_BODY, state="ON",
        headers=bad_sig))
    # The attack of issue 15: a validly signed delivery replayed to Jenkins' script
    # console. The signature covers the body only; no route takes the path: 404.
    write(pw + "replayed-to-script-console.json", rest_proxy_event(
        delivery="7e1c0a10-c74f-11f0-8a3e-5d2f1a9b0c08", body=PUSH_BODY, state="ON",
        path="/webhook/scriptText", resource="/webhook/{proxy+}",
        query={"script": "println(new File('/etc/passwd').text)"},
        path_parameters={"proxy": "scriptText"}))
    # A dot segment climbing out of a route's remainder: 400.
    write(pw + "dot-segment-escape.json", rest_proxy_event(
        delivery="7e1c0a10-c74f-11f0-8a3e-5d2f1a9b0c09", body=PUSH_BODY, state="ON",
        path="/webhook/project/%2e%2e/scriptText", resource="/webhook/{proxy+}",
        path_parameters={"proxy": "project/%2e%2e/scriptText"}))
    # A name mapped to no value at all: API Gateway never sends it, a direct invoke can.
    empty_query = rest_proxy_event(
        delivery="7e1c0a10-c74f-11f0-8a3e-5d2f1a9b0c0a", body=PUSH_BODY, state="ON")
    empty_query["multiValueQueryStringParameters"] = {"token": []}
    write(pw + "empty-query-list.json", empty_query)

    sfq = "send_from_queue/"
    write(sfq + "schedule.json", {
        "version": "0",
        "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": "2025-11-22T03:11:00Z",
        "region": REGION,
        "resources": [
            f"arn:aws:events:{REGION}:123456789012:rule/spigot-SendFromQueueFunctionDrain-1A2B3C4D5E6F"
        ],
        "detail": {},
    })
    write(sfq + "drain.json", {"action": "drain"})

    gl = "gitlab_ingest/"
    gitlab = {"state": "ON", "path": "/gitlab", "resource": "/gitlab"}
    write(gl + "job-hook-success.json", rest_proxy_event(
        body=job_hook("success"), headers=gitlab_headers(), **gitlab))
    write(gl + "job-hook-running.json", rest_proxy_event(
        body=job_hook("running"), headers=gitlab_headers(), **gitlab))
    write(gl + "job-hook-bad-token.json", rest_proxy_event(
        body=job_hook("success"), headers=gitlab_headers(token="wrong"), **gitlab))
    after_script = {"project_id": str(GITLAB_PROJECT), "job_id": str(GITLAB_JOB), "job_name": "build",
                    "project_name": "demo/app", "runner_id": "7"}
    write(gl + "after-script.json", rest_proxy_event(
        body=b"", method="GET", query=after_script,
        headers={"User-Agent": "curl/8.5.0", "X-Gitlab-Token": GITLAB_SECRET}, **gitlab))
    write(gl + "after-script-token-in-url.json", rest_proxy_event(
        body=b"", method="GET", query={**after_script, "gitlab_token": "glpat-leaked"},
        headers={"User-Agent": "curl/8.5.0"}, **gitlab))
    # A name mapped to no value (direct invoke): read as absent, answered 400, no crash.
    empty = rest_proxy_event(
        body=b"", method="GET", query=after_script,
        headers={"User-Agent": "curl/8.5.0", "X-Gitlab-Token": GITLAB_SECRET}, **gitlab)
    empty["multiValueQueryStringParameters"] = {**empty["multiValueQueryStringParameters"], "job_id": []}
    empty["queryStringParameters"] = None
    write(gl + "after-script-empty-query-list.json", empty)
    write(gl + "ingest-batch.json", sqs_event([{
        "version": 1, "project_id": GITLAB_PROJECT, "job_id": GITLAB_JOB, "source": "job_hook",
        "project_path": "demo/app", "received_at": "2025-11-22T03:04:06Z"}]))

    pr = "port_runner/"
    write(pr + "self-managed-kafka.json",
          kafka_event({0: [compact(port_legacy_envelope("r_fixtureLegacy01"))]}))
    # A v2 action's own payload: the run id and inputs wherever its template put them.
    write(pr + "msk-v2-payload.json", kafka_event({3: [compact({
        "run": {"id": "r_fixtureV2payload"},
        "action": {"identifier": PORT_ACTION},
        "inputs": PORT_INPUTS,
        "trigger": {"by": {"user": {"email": "ana@example.com"}}},
    })]}, msk=True))
    write(pr + "mixed-batch.json", kafka_event({
        0: [b"\xff\xfe not json", compact({"action": PORT_ACTION, "payload": {}})],
        1: [compact(port_legacy_envelope("r_fixtureBatch01"))],
    }))

    lt = "log_tailer/"
    write(lt + "checkpoint.json", sqs_event([tail_checkpoint("r_fixtureLegacy01")]))
    write(lt + "bad-checkpoint.json", sqs_event([{"version": 1, "run_id": "r_fixtureBad01"}]))

    al = "aliecs_ingest/"
    detectors = ["ITS", "TPC"]
    running = env_info(559124, "RUNNING", detectors, ALIECS_T0 + 2_000)
    write(al + "legacy-run.json", aliecs_kafka_event([
        ("aliecs.env_state.RUNNING", state_notification(running, ALIECS_T0 + 2_000)),
        ("aliecs.env_list.RUNNING", active_runs_list([running], ALIECS_T0 + 2_500)),
        ("aliecs.env_leave_state.RUNNING", state_notification(running, ALIECS_T0 + 62_000)),
        ("aliecs.env_state.CONFIGURED", state_notification(
            env_info(None, "CONFIGURED", detectors, ALIECS_T0 + 62_100), ALIECS_T0 + 62_100)),
    ]))
    t1 = ALIECS_T0 + 3_600_000
    write(al + "run-events.json", aliecs_kafka_event([
        ("aliecs.run", run_event(t1, 559125, "START_ACTIVITY", OP_STARTED, "CONFIGURED", "anna")),
        ("aliecs.environment", environment_event(t1 + 900, 559125, "RUNNING", "START_ACTIVITY",
                                                 OP_DONE_OK)),
        ("aliecs.run", run_event(t1 + 45_000, 559125, "GO_ERROR", OP_STARTED, "RUNNING", "anna")),
    ], msk=True))
    write(al + "bad-records.json", aliecs_kafka_event([
        ("aliecs.run", b"\xff\xff\xff not protobuf"),
        ("aliecs.unheard_of", pb_int(2, ALIECS_T0)),
        ("aliecs.env_list.RUNNING", active_runs_list([], ALIECS_T0)),
    ]))


if __name__ == "__main__":
    main()
