"""moto's server on 127.0.0.1, its ECS wire format repaired where moto 5.2 departs from ECS (tests/sdk_against_moto.rs).

    python3 tests/moto/ecs_server.py --port 0 [--until-stdin-closes] [--no-patches] [--log-requests]
        [--log-operations]

Prints `listening on 127.0.0.1:PORT` once it accepts connections, then serves until SIGTERM or SIGINT, or with
`--until-stdin-closes` until its stdin closes too (the test process holds the other end, so the server goes away with
the tests even when they are killed). `--no-patches` serves moto as it is, for the test that shows why the patches
exist. `--log-requests` keeps werkzeug's line per request on stderr (moto's request log), for the tests that count
requests. `--log-operations` writes `operation SERVICE:Action` on stderr for every AWS call, as IAM names it
(`dynamodb:GetItem`, `sts:GetCallerIdentity`), and for `TransactWriteItems` also the item actions it holds
(`dynamodb:TransactWriteItems Put,ConditionCheck`), which is what IAM authorises it as (tests/deploy.rs).
"""
import argparse
import io
import json
import logging
import re
import urllib.parse
import signal
import sys
import threading

from moto.ecs.responses import EC2ContainerServiceResponse
from moto.moto_api import state_manager
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import make_server

ECS = "AmazonEC2ContainerServiceV20141113."
STRING_NUMBERS = ("cpu", "memory", "memoryReservation")


def stringify_containers(body: dict) -> None:
    """moto writes a task's `containers[].cpu`/`memory` as JSON numbers; ECS sends strings, and the Rust SDK rejects
    the whole response otherwise (TypeMismatch: expected string)."""
    for task in body.get("tasks", []) + ([body["task"]] if isinstance(body.get("task"), dict) else []):
        for container in task.get("containers", []):
            for key in STRING_NUMBERS:
                if isinstance(container.get(key), (int, float)):
                    container[key] = str(container[key])


def ecs_json(app):
    """WSGI middleware: rewrites ECS JSON responses (DescribeTasks, RunTask, StartTask, StopTask) with
    `stringify_containers`."""

    def middleware(environ, start_response):
        if not environ.get("HTTP_X_AMZ_TARGET", "").startswith(ECS):
            return app(environ, start_response)
        captured, chunks = {}, []

        def capture(status, headers, exc_info=None):
            captured.update(status=status, headers=headers)
            return chunks.append

        result = app(environ, capture)
        try:
            chunks.extend(result)
        finally:
            getattr(result, "close", lambda: None)()
        body = b"".join(chunks)
        try:
            doc = json.loads(body)
        except ValueError:
            doc = None
        if isinstance(doc, dict):
            stringify_containers(doc)
            body = json.dumps(doc).encode()
        headers = [(k, v) for k, v in captured["headers"] if k.lower() != "content-length"]
        start_response(captured["status"], headers + [("Content-Length", str(len(body)))])
        return [body]

    return middleware


def log_operations(app):
    """WSGI middleware: a line `operation SERVICE:Action` on stderr per AWS call. The service is the signing name of
    the request's SigV4 credential scope; the action comes from `X-Amz-Target` (JSON protocols) or the `Action`
    form field (query protocols)."""

    def middleware(environ, start_response):
        scope = re.search(r"Credential=[^/]+/[^/]+/[^/]+/([^/]+)/aws4_request", environ.get("HTTP_AUTHORIZATION", ""))
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        action = target.rsplit(".", 1)[-1] if target else None
        if action is None and body:
            action = urllib.parse.parse_qs(body.decode(errors="replace")).get("Action", [None])[0]
        if scope and action:
            line = f"operation {scope.group(1)}:{action}"
            if action == "TransactWriteItems":
                items = json.loads(body).get("TransactItems", [])
                line += " " + ",".join(sorted({k for item in items for k in item}))
            print(line, file=sys.stderr, flush=True)
        return app(environ, start_response)

    return middleware


def apply_total_resources() -> None:
    """moto's RegisterContainerInstance ignores `totalResources` (every instance gets 4096 CPU and 7482 MiB): apply
    the request's values to the instance before the response is written, to its registered and remaining
    resources alike (nothing runs on it yet)."""
    register = EC2ContainerServiceResponse.register_container_instance

    def register_container_instance(self):
        result = register(self)
        instance = result.result["containerInstance"]
        for given in self._get_param("totalResources") or []:
            for resources in (instance.registered_resources, instance.remaining_resources):
                for r in resources:
                    if r["name"] == given["name"]:
                        r.update({k: v for k, v in given.items() if k != "name"})
        return result

    EC2ContainerServiceResponse.register_container_instance = register_container_instance


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--until-stdin-closes", action="store_true", help="also stop when stdin reaches EOF")
    parser.add_argument("--no-patches", action="store_true", help="serve moto's ECS as it is")
    parser.add_argument("--log-requests", action="store_true", help="a line per request on stderr")
    parser.add_argument("--log-operations", action="store_true", help="a line per AWS operation on stderr")
    args = parser.parse_args()

    if args.log_requests:
        logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(message)s")
    else:
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request in the test output
    # moto advances a task's lastStatus one step (RUNNING, DEACTIVATING, ... STOPPED) on every DescribeTasks that
    # names it: tasks would stop because they were looked at. This is what POST /moto-api/state-manager/set-transition
    # sets, done in-process: advance only after a million looks.
    state_manager.set_transition("ecs::task", {"progression": "manual", "times": 1_000_000})
    app = DomainDispatcherApplication(create_backend_app)
    if not args.no_patches:
        apply_total_resources()
        app = ecs_json(app)
    if args.log_operations:
        app = log_operations(app)
    server = make_server("127.0.0.1", args.port, app, threaded=True)

    def stop(*_):
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if args.until_stdin_closes:
        threading.Thread(target=lambda: (sys.stdin.read(), stop()), daemon=True).start()
    print(f"listening on 127.0.0.1:{server.server_port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
