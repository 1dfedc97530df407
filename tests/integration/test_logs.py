"""CloudWatch Logs and CloudWatch metrics over Geysir's function logs, driven the way Zappa's
`tail` and `status` and the AWS CLI drive them.

Run: GEYSIR_BUILD_DIR=build/x /usr/bin/python3 -m pytest -q tests/integration/test_logs.py
"""
import datetime
import json
import os
import re
import subprocess
import time

import botocore.exceptions
import pytest

from conftest import wait_until

STREAM = re.compile(r"^\d{4}/\d{2}/\d{2}/\[\$LATEST\][0-9a-f]{32}$")

APP = {"app.py": (
    "def handler(event, context):\n"
    "    print('hello from', event.get('n'))\n"
    "    print('second line: \"quoted phrase\" here')\n"
    "    if event.get('fail'):\n"
    "        raise ValueError('boom')\n"
    "    return {'ok': event.get('n')}\n")}


def error_of(call, **kwargs):
    with pytest.raises(botocore.exceptions.ClientError) as e:
        call(**kwargs)
    return e.value.response


@pytest.fixture(scope="module")
def logged(server, lam):
    """A function invoked 3 times (one failing), with its log lines stored."""
    name = f"logs-{os.getpid()}"
    server.create(lam, name, APP)
    started_ms = int(time.time() * 1000) - 1000
    for n in (1, 2):
        r = lam.invoke(FunctionName=name, Payload=json.dumps({"n": n}).encode())
        assert "FunctionError" not in r
    r = lam.invoke(FunctionName=name, Payload=json.dumps({"n": 3, "fail": True}).encode())
    assert r["FunctionError"] == "Unhandled"
    logs = server.client("logs")
    group = f"/aws/lambda/{name}"

    def shipped():
        ev = logs.filter_log_events(logGroupName=group)["events"]
        return sum(1 for e in ev if e["message"].startswith("REPORT RequestId:")) == 3
    # Log batches reach control after the answer (off the critical path): wait for them.
    wait_until(shipped, 20, interval=0.2, what="the REPORT lines of 3 invocations")
    yield {"name": name, "group": group, "logs": logs, "started_ms": started_ms}
    try:
        lam.delete_function(FunctionName=name)
    except botocore.exceptions.ClientError:
        pass


def test_zappa_tail(logged):
    """Zappa's fetch_logs: DescribeLogStreams(descending, LastEventTime), then FilterLogEvents over
    every stream with the time window, filterPattern "", limit 10000, interleaved — one page."""
    logs, group = logged["logs"], logged["group"]
    streams = logs.describe_log_streams(logGroupName=group, descending=True, orderBy="LastEventTime")
    assert streams["ResponseMetadata"]["HTTPStatusCode"] == 200
    names = [s["logStreamName"] for s in streams["logStreams"]]
    assert names and all(STREAM.match(n) for n in names), names
    s0 = streams["logStreams"][0]
    assert s0["firstEventTimestamp"] <= s0["lastEventTimestamp"]
    assert s0["arn"].endswith(f"log-group:{group}:log-stream:{s0['logStreamName']}")

    end_ms = int(time.time()) * 1000 + 1000
    r = logs.filter_log_events(logGroupName=group, logStreamNames=names, startTime=logged["started_ms"],
                               endTime=end_ms, filterPattern="", limit=10000, interleaved=True)
    assert "nextToken" not in r  # everything in one page: Zappa's paging would mangle startTime
    messages = [e["message"] for e in r["events"]]
    assert sum(m.startswith("START RequestId:") for m in messages) == 3
    assert sum(m.startswith("END RequestId:") for m in messages) == 3
    assert any(m == "hello from 1\n" for m in messages), messages
    assert all(m.endswith("\n") for m in messages)
    stamps = [e["timestamp"] for e in r["events"]]
    assert stamps == sorted(stamps)
    assert all(e["logStreamName"] in names and e["eventId"] for e in r["events"])
    # A window before the invocations has nothing in it.
    r = logs.filter_log_events(logGroupName=group, startTime=1000, endTime=logged["started_ms"] - 60000)
    assert r["events"] == []


def test_filter_patterns(logged):
    logs, group = logged["logs"], logged["group"]

    def messages(pattern):
        return [e["message"] for e in logs.filter_log_events(logGroupName=group, filterPattern=pattern)["events"]]
    assert messages("hello") == ["hello from 1\n", "hello from 2\n", "hello from 3\n"]
    assert messages("hello 2") == ["hello from 2\n"]
    assert len(messages('"quoted phrase"')) == 3
    assert messages('"phrase quoted"') == []
    assert sorted(messages("?from ?boom")) == sorted(messages("hello") + [m for m in messages("boom")])
    assert messages("hello -1 -3") == ["hello from 2\n"]
    assert messages("HELLO") == []  # case-sensitive, as CloudWatch is
    # A page limit: the rest is reachable with nextToken.
    r = logs.filter_log_events(logGroupName=group, filterPattern="hello", limit=2)
    assert len(r["events"]) == 2 and "nextToken" in r
    r2 = logs.filter_log_events(logGroupName=group, filterPattern="hello", limit=2, nextToken=r["nextToken"])
    assert [e["message"] for e in r2["events"]] == ["hello from 3\n"] and "nextToken" not in r2
    err = error_of(logs.filter_log_events, logGroupName=group, filterPattern="{ $.x = 1 }")
    assert err["Error"]["Code"] == "InvalidParameterException"


def test_get_log_events_and_groups(logged):
    logs, group = logged["logs"], logged["group"]
    stream = logs.describe_log_streams(logGroupName=group)["logStreams"][0]["logStreamName"]
    r = logs.get_log_events(logGroupName=group, logStreamName=stream, startFromHead=True, limit=2)
    assert len(r["events"]) == 2 and r["nextForwardToken"].startswith("f/")
    r2 = logs.get_log_events(logGroupName=group, logStreamName=stream, nextToken=r["nextForwardToken"])
    assert r2["events"] and r2["events"][0]["timestamp"] >= r["events"][-1]["timestamp"]
    newest = logs.get_log_events(logGroupName=group, logStreamName=stream, limit=1)["events"]
    assert newest[0]["message"].startswith("REPORT RequestId:")
    groups = logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"]
    assert [g["logGroupName"] for g in groups] == [group] and groups[0]["storedBytes"] > 0
    err = error_of(logs.describe_log_streams, logGroupName="/aws/lambda/no-such-function-z")
    assert err["Error"]["Code"] == "ResourceNotFoundException"
    assert err["Error"]["Message"] == "The specified log group does not exist."
    assert error_of(logs.filter_log_events, logGroupName="/not/lambda")["Error"]["Code"] == "ResourceNotFoundException"


def statistics(client, name, metric, hours=24, period=1440):
    now = datetime.datetime.now(datetime.timezone.utc)
    return client.get_metric_statistics(
        Namespace="AWS/Lambda", MetricName=metric, StartTime=now - datetime.timedelta(hours=hours), EndTime=now,
        Period=period, Statistics=["Sum"], Dimensions=[{"Name": "FunctionName", "Value": name}])


def test_zappa_status_metrics(server, logged):
    """Zappa's status: GetMetricStatistics(Invocations / Errors, Sum, Period 1440, last 24 h) and it
    reads Datapoints[0]["Sum"] (botocore 1.26: the query protocol)."""
    cw = server.client("cloudwatch")
    inv = wait_until(lambda: (lambda d: d if d and sum(p["Sum"] for p in d) >= 3 else None)(
        statistics(cw, logged["name"], "Invocations")["Datapoints"]), 10, what="Invocations datapoints")
    assert sum(p["Sum"] for p in inv) == 3.0 and inv[0]["Unit"] == "Count"
    errors = statistics(cw, logged["name"], "Errors")
    assert errors["Label"] == "Errors" and sum(p["Sum"] for p in errors["Datapoints"]) == 1.0
    dur = cw.get_metric_statistics(
        Namespace="AWS/Lambda", MetricName="Duration", StartTime=datetime.datetime.now(datetime.timezone.utc)
        - datetime.timedelta(hours=1), EndTime=datetime.datetime.now(datetime.timezone.utc), Period=3600,
        Statistics=["SampleCount", "Maximum"], Dimensions=[{"Name": "FunctionName", "Value": logged["name"]}])
    assert dur["Datapoints"][0]["SampleCount"] == 3.0 and dur["Datapoints"][0]["Unit"] == "Milliseconds"
    assert statistics(cw, "no-such-function", "Invocations")["Datapoints"] == []
    err = error_of(cw.get_metric_statistics, Namespace="AWS/Lambda", MetricName="Invocations",
                   StartTime=datetime.datetime(2026, 1, 1), EndTime=datetime.datetime(2026, 1, 10), Period=60,
                   Statistics=["Sum"])
    assert err["Error"]["Code"] == "InvalidParameterCombination"
    # The AWS CLI v2 that Debian ships.
    now = datetime.datetime.now(datetime.timezone.utc)
    r = server.aws("cloudwatch", "get-metric-statistics", "--namespace", "AWS/Lambda", "--metric-name", "Invocations",
                   "--start-time", (now - datetime.timedelta(hours=1)).isoformat(), "--end-time", now.isoformat(),
                   "--period", "3600", "--statistics", "Sum", "--dimensions", f"Name=FunctionName,Value={logged['name']}")
    assert r.returncode == 0, r.stderr
    assert sum(p["Sum"] for p in json.loads(r.stdout)["Datapoints"]) == 3.0


NEW_BOTO = "/root/.pyenv/versions/3.11.7/bin/python3"


@pytest.mark.skipif(not os.access(NEW_BOTO, os.X_OK), reason="no second Python with a newer boto3 on this machine")
def test_newer_botocore_protocols(server, logged):
    """boto3 1.43 talks to CloudWatch in Smithy RPC v2 CBOR (and Logs in JSON 1.1)."""
    script = (
        "import boto3, datetime, json, sys\n"
        "kw = dict(endpoint_url=sys.argv[1], region_name='us-east-1', aws_access_key_id=sys.argv[2],"
        " aws_secret_access_key=sys.argv[3])\n"
        "cw = boto3.client('cloudwatch', **kw)\n"
        "now = datetime.datetime.now(datetime.timezone.utc)\n"
        "r = cw.get_metric_statistics(Namespace='AWS/Lambda', MetricName='Invocations', StartTime=now - "
        "datetime.timedelta(days=1), EndTime=now, Period=1440, Statistics=['Sum'], Dimensions=[{'Name': "
        "'FunctionName', 'Value': sys.argv[4]}])\n"
        "logs = boto3.client('logs', **kw)\n"
        "n = len(logs.filter_log_events(logGroupName='/aws/lambda/' + sys.argv[4])['events'])\n"
        "print(json.dumps({'sum': sum(p['Sum'] for p in r['Datapoints']), 'ts': str(type(r['Datapoints'][0]"
        "['Timestamp'])), 'events': n}))\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    r = subprocess.run([NEW_BOTO, "-c", script, server.control_endpoint, server.access_key, server.secret_key,
                        logged["name"]], capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["sum"] == 3.0 and "datetime" in out["ts"] and out["events"] >= 12


def test_delete_log_group_last(server, lam, logged):
    """Zappa's undeploy: DeleteLogGroup removes the stored lines (run last in this module)."""
    logs, group = logged["logs"], logged["group"]
    r = logs.delete_log_group(logGroupName=group)
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert logs.filter_log_events(logGroupName=group)["events"] == []
    lam.delete_function(FunctionName=logged["name"])
    err = error_of(logs.delete_log_group, logGroupName=group)
    assert err["Error"]["Code"] == "ResourceNotFoundException"


def test_logs_complete_and_ordered_under_concurrent_load(server, lam):
    """Group commit: the invocations finishing while a logs frame is being stored go to control
    together, in one transaction. Every invocation's START, lines, END and REPORT must still be
    stored, once each and in order, and a lone invocation's lines must be visible within a second."""
    import concurrent.futures
    name = f"logs-load-{os.getpid()}"
    app = {"app.py": ("def handler(event, context):\n"
                      "    print('first line of', context.aws_request_id)\n"
                      "    print('second line of', context.aws_request_id)\n"
                      "    return {'ok': True}\n")}
    url = server.create(lam, name, app, url=True)
    try:
        n_threads, per_thread = 8, 12

        def burst(_):
            ids = []
            for _ in range(per_thread):
                status, headers, _ = server.url_request(url)
                assert status == 200
                ids.append(headers["x-amzn-requestid"])
            return ids
        with concurrent.futures.ThreadPoolExecutor(n_threads) as ex:
            request_ids = [rid for ids in ex.map(burst, range(n_threads)) for rid in ids]
        assert len(set(request_ids)) == n_threads * per_thread
        logs = server.client("logs")
        group = f"/aws/lambda/{name}"

        def all_events():
            out, token = [], None
            for _ in range(100):
                kw = {"logGroupName": group, "limit": 10000}
                if token:
                    kw["nextToken"] = token
                r = logs.filter_log_events(**kw)
                out += r["events"]
                token = r.get("nextToken")
                if not token:
                    return out
            raise AssertionError("too many pages")

        def reports():
            return sum(1 for e in all_events() if e["message"].startswith("REPORT RequestId:"))
        wait_until(lambda: reports() >= len(request_ids), 30, interval=0.2, what="every REPORT line")
        # In stored order ((timestamp, id)), each invocation's own lines: exactly these five.
        by_request = {rid: [] for rid in request_ids}
        for e in all_events():
            m = re.search(r"([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})", e["message"])
            assert m and m.group(1) in by_request, e
            by_request[m.group(1)].append(e["message"].split(" ")[0] + " " + e["message"].split(" ")[1])
        for rid, lines in by_request.items():
            assert lines == ["START RequestId:", "first line", "second line", "END RequestId:", "REPORT RequestId:"], \
                (rid, lines)

        # Nothing in flight now: one invocation's lines are stored at once, not held for a batch.
        t0 = time.monotonic()
        status, headers, _ = server.url_request(url)
        assert status == 200
        rid = headers["x-amzn-requestid"]
        wait_until(lambda: any(e["message"].startswith(f"REPORT RequestId: {rid}") for e in
                               logs.filter_log_events(logGroupName=group, filterPattern=f'"{rid}"')["events"]),
                   5, interval=0.02, what="the lone invocation's REPORT line")
        assert time.monotonic() - t0 < 1.0
    finally:
        lam.delete_function(FunctionName=name)
