"""Drives a served twin with boto3, as any ECS script would, and prints what it saw as one JSON object.

usage: boto3_drive.py ENDPOINT CLUSTER SCENARIO
  stop-task   stop one task of service `api` on instance `b`; wait for the service to be whole again
  redeploy    force a new deployment of service `web`; wait until every task belongs to it
  paginate    page through ListTasks and ListContainerInstances 25 at a time
Waits in real seconds (the twin runs with --tick, so simulated minutes pass in a few seconds).
"""
import json
import sys
import time

import boto3

endpoint, cluster, scenario = sys.argv[1:4]
ecs = boto3.client(
    "ecs",
    endpoint_url=endpoint,
    region_name="eu-west-1",
    aws_access_key_id="test",
    aws_secret_access_key="test",
)


def service(name):
    return ecs.describe_services(cluster=cluster, services=[name])["services"][0]


def running_tasks(service_name):
    arns = []
    for page in ecs.get_paginator("list_tasks").paginate(cluster=cluster, serviceName=service_name):
        arns += page["taskArns"]
    tasks = []
    for i in range(0, len(arns), 100):
        tasks += ecs.describe_tasks(cluster=cluster, tasks=arns[i : i + 100])["tasks"]
    return [t for t in tasks if t["lastStatus"] == "RUNNING" and t["desiredStatus"] == "RUNNING"]


def wait(condition, limit=30.0):
    start = time.monotonic()
    while time.monotonic() - start < limit:
        if condition():
            return time.monotonic() - start
        time.sleep(0.2)
    raise SystemExit(f"timed out after {limit}s")


def instance_arn(name):
    for arn in ecs.list_container_instances(cluster=cluster)["containerInstanceArns"]:
        if arn.endswith("/" + name):
            return arn
    raise SystemExit(f"no instance {name}")


out = {}
if scenario == "stop-task":
    b = instance_arn("b")
    before = {t["taskArn"] for t in running_tasks("api")}
    victim = next(t for t in running_tasks("api") if t["containerInstanceArn"] == b)
    ecs.stop_task(cluster=cluster, task=victim["taskArn"], reason="boto3 test")
    stopped = ecs.describe_tasks(cluster=cluster, tasks=[victim["taskArn"]])["tasks"][0]
    out["stoppedReason"] = stopped.get("stoppedReason")
    wait(lambda: len(running_tasks("api")) == service("api")["desiredCount"]
         and victim["taskArn"] not in [t["taskArn"] for t in running_tasks("api")])
    after = running_tasks("api")
    out["replacementOn"] = [t["containerInstanceArn"].rsplit("/", 1)[1] for t in after if t["taskArn"] not in before]
    out["running"] = len(after)
elif scenario == "redeploy":
    before = {t["taskArn"] for t in running_tasks("web")}
    ecs.update_service(cluster=cluster, service="web", forceNewDeployment=True)
    primary = next(d for d in service("web")["deployments"] if d["status"] == "PRIMARY")["id"]
    out["took"] = wait(lambda: len(service("web")["deployments"]) == 1
                       and all(t["startedBy"] == primary for t in running_tasks("web"))
                       and len(running_tasks("web")) == service("web")["desiredCount"])
    after = {t["taskArn"] for t in running_tasks("web")}
    out["replaced"] = len(before - after)
    out["kept"] = len(before & after)
    out["running"] = len(after)
elif scenario == "paginate":
    pages = list(ecs.get_paginator("list_tasks").paginate(cluster=cluster, PaginationConfig={"PageSize": 25}))
    out["taskPages"] = len(pages)
    out["tasks"] = sum(len(p["taskArns"]) for p in pages)
    out["distinctTasks"] = len({a for p in pages for a in p["taskArns"]})
    pages = list(ecs.get_paginator("list_container_instances").paginate(
        cluster=cluster, PaginationConfig={"PageSize": 3}))
    out["instancePages"] = len(pages)
    out["instances"] = sum(len(p["containerInstanceArns"]) for p in pages)
else:
    raise SystemExit(f"unknown scenario {scenario}")
print(json.dumps(out))
