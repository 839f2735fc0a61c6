#!/usr/bin/env python3
"""Chaos soak (issue 18): real processes, real faults, an independent invariant checker.

    scripts/chaos/chaos.py --bin BIN --snapshot S.json --policy scripts/chaos/policy.yaml --cluster NAME \\
        --seed 1 --cycles 3000 --minutes 60 --time-scale 50 --lease 3 --out /tmp/chaos

BIN is built with the test-only `chaos` feature when `--time-scale` or `--unfenced` is given
(`cargo build --profile bench --features chaos`): `--time-scale 50` turns the policy's 10 s interval and the
controller's error back-offs (60 s, 120 s) into 0.2 s, 1.2 s and 2.4 s; the lease, cooldowns and deadlines stay in
wall-clock time. `--unfenced` starts replica r1 as the deliberately broken build (it acts without the lease), which
the checker must catch (tests/chaos.rs). `--events` picks the faults made (all by default).

It starts `moto_server` (DynamoDB) behind a TCP proxy the soak can cut, `twin serve` with throttling and injected
faults, and two `run` replicas sharing one ledger table. At seeded random moments it kills a replica with SIGKILL
(and starts it again), pauses the lease's holder with SIGSTOP past its lease (SIGCONT after), cuts DynamoDB for a
while (the proxy refuses connections; moto keeps its state), registers new empty instances in the twin, and drains an instance
with the AWS CLI (someone else's drain, ended later the same way). It stops after `--cycles` controller cycles
(counted from the replicas' `cycle` and `cycle failed` log lines) or `--minutes`, lets what is in flight play out, and prints the
reliability table as JSON, with the checker's verdict (scripts/chaos/check.py). Replica r0 starts first and leads;
r1 starts once r0 leads. A replica that exits on its own (a panic, a fatal error) is a finding: it is listed under
`replicaExits` and started again. Exit status 1 if any invariant was violated or a replica exited on its own.
"""

import argparse
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import boto3

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from check import Checker  # noqa: E402

MAX_SCALE_OUTS = 8
# The faults the soak makes, with their odds against a quiet spell's 2.
EVENTS = {"kill": 3, "pause": 2, "outage": 2, "scale-out": 2, "foreign-drain": 3}

CLUSTER_ENV = {
    "AWS_ACCESS_KEY_ID": "test",
    "AWS_SECRET_ACCESS_KEY": "test",
    "AWS_REGION": "eu-west-1",
    "AWS_DEFAULT_REGION": "eu-west-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port, seconds=30):
    end = time.time() + seconds
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


class Proxy:
    """A TCP proxy to moto that the soak can cut: while down it refuses new connections and drops open ones."""

    def __init__(self, target):
        self.target = target
        self.port = free_port()
        self.up = True
        self.conns = []
        self.lock = threading.Lock()
        self.server = socket.socket()
        self.server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.server.bind(("127.0.0.1", self.port))
        self.server.listen(64)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            client, _ = self.server.accept()
            if not self.up:
                client.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                client.close()
                continue
            with self.lock:
                self.conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(a, b):
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def cut(self):
        self.up = False
        with self.lock:
            for s in self.conns:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            self.conns = []

    def restore(self):
        self.up = True


class Replica:
    """One `run` process; each start is a new generation with its own user agent, so the journal names the sender."""

    def __init__(self, name, args, env, out):
        self.name, self.args, self.env, self.out = name, args, env, out
        self.proc, self.generation, self.starts = None, 0, []

    def start(self):
        self.generation += 1
        app = f"chaos-{self.name}-g{self.generation}"
        log = open(os.path.join(self.out, f"{self.name}-g{self.generation}.log"), "w")
        env = dict(self.env, AWS_SDK_UA_APP_ID=app)
        self.proc = subprocess.Popen(self.args, env=env, stdout=log, stderr=subprocess.STDOUT)
        self.starts.append((app, self.proc.pid, log.name))

    def signal(self, sig):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)

    def wait_for(self, message, seconds):
        """Waits until the current process logged `message`."""
        end = time.time() + seconds
        while time.time() < end:
            with open(self.starts[-1][2], errors="replace") as f:
                if f'"message":"{message}"' in f.read():
                    return
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not log {message!r} within {seconds} s")

    def exited(self):
        """The exit status if the process ended on its own (the soak ends its replicas only by signals)."""
        return self.proc.poll() if self.proc else None


def count_cycles(replicas):
    n = 0
    for r in replicas:
        for _, _, path in r.starts:
            with open(path, errors="replace") as f:
                n += sum(1 for line in f if '"message":"cycle"' in line or '"message":"cycle failed' in line)
    return n


def holders(replicas):
    """pid -> the lease holder id the process logged at start-up."""
    found = {}
    for r in replicas:
        for _, pid, path in r.starts:
            with open(path, errors="replace") as f:
                for line in f:
                    m = re.search(r'"holder":"([^"]+)"', line)
                    if m:
                        found[pid] = m.group(1)
                        break
    return found


def leader(replicas, checker):
    """The replica whose running process holds the lease, by the checker's last look at it (None: no one)."""
    if not checker.leases or checker.leases[-1][3]:
        return None
    by_pid = holders(replicas)
    holder = checker.leases[-1][1]
    return next((r for r in replicas if r.proc and by_pid.get(r.proc.pid) == holder), None)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bin", required=True)
    p.add_argument("--snapshot", required=True)
    p.add_argument("--policy", required=True)
    p.add_argument("--cluster", required=True)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--cycles", type=int, default=300)
    p.add_argument("--minutes", type=float, default=20)
    p.add_argument("--tick", default="10")
    p.add_argument("--lease", type=float, default=6.0, help="seconds")
    p.add_argument("--time-scale", type=float, default=1.0,
                   help="divide the replicas' waits by this (a build with the `chaos` feature)")
    p.add_argument("--unfenced", action="store_true",
                   help="replica r1 acts without the lease: the deliberately broken build the checker must catch")
    p.add_argument("--events", default="kill,pause,outage,scale-out,foreign-drain",
                   help="the faults to make, comma-separated (default: all)")
    p.add_argument("--settle", type=float, default=None,
                   help="seconds to let in-flight actions play out at the end (default: four leases and a minute)")
    p.add_argument("--out", required=True)
    a = p.parse_args()
    os.makedirs(a.out, exist_ok=True)
    rng = random.Random(a.seed)
    allowed = set(a.events.split(","))
    if allowed - set(EVENTS):
        p.error(f"unknown events: {sorted(allowed - set(EVENTS))}; known: {sorted(EVENTS)}")
    procs = []

    moto_port = free_port()
    moto = subprocess.Popen(["moto_server", "-p", str(moto_port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    procs.append(moto)
    wait_for_port(moto_port)
    proxy = Proxy(moto_port)

    twin_port = free_port()
    twin_url = f"http://127.0.0.1:{twin_port}"
    twin_log = open(os.path.join(a.out, "twin.log"), "w")
    twin = subprocess.Popen(
        [a.bin, "twin", "serve", "--snapshot", a.snapshot, "--listen", f"127.0.0.1:{twin_port}", "--tick", a.tick,
         "--seed", str(a.seed), "--throttle", "--error-rate", "0.02", "--drop-mutation-responses", "0.1",
         "--describe-failures", "0.01"],
        stdout=twin_log, stderr=subprocess.STDOUT)
    procs.append(twin)
    wait_for_port(twin_port)

    env = dict(os.environ, **CLUSTER_ENV, RUST_LOG="info",
               AWS_ENDPOINT_URL_DYNAMODB=f"http://127.0.0.1:{proxy.port}", AWS_ENDPOINT_URL_ECS=twin_url)
    for k in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_ACCOUNT_ID"):
        env.pop(k, None)
    table = "chaos"
    subprocess.run([a.bin, "init", "--table", table], env=env, check=True, stdout=subprocess.DEVNULL)
    replicas = []
    for name in ("r0", "r1"):
        args = [a.bin, "run", "--policy", a.policy, "--cluster", a.cluster, "--table", table,
                "--lease-duration", f"{a.lease}s", "--listen", f"127.0.0.1:{free_port()}"]
        if a.time_scale != 1.0:
            args += ["--time-scale", str(a.time_scale)]
        if a.unfenced and name == "r1":
            args += ["--unfenced"]
        replicas.append(Replica(name, args, env, a.out))
    # r0 starts first and leads; r1 follows it (with --unfenced, every mutation r1 sends while r0 leads is one
    # the checker must flag).
    replicas[0].start()
    replicas[0].wait_for("leading", 60)
    replicas[1].start()

    db = boto3.client("dynamodb", endpoint_url=f"http://127.0.0.1:{moto_port}", region_name="eu-west-1",
                      aws_access_key_id="test", aws_secret_access_key="test")
    def pids(user_agent):
        """The replica process that sent a request, by the exact app id in its user agent (`chaos-r0-g1` is a prefix
        of `chaos-r0-g12`, so a substring match would name the wrong generation)."""
        m = re.search(r"app/(\S+)", user_agent or "")
        return next((pid for r in replicas for app, pid, _ in r.starts if m and m.group(1) == app), None)

    deadline = 30 * 60 + 4 * a.lease + 60  # the controller's action deadline, and a cycle, a takeover and an outage
    checker = Checker(twin_url, db, table, a.cluster, deadline, pids)
    counts = {"kills": 0, "pauses": 0, "leader pauses": 0, "outages": 0, "scale-outs": 0, "foreign drains": 0}
    cli = ["aws", "--endpoint-url", twin_url, "--region", "eu-west-1", "ecs"]
    foreign = []
    started = time.time()
    exits = []
    try:
        def watch(half_seconds):
            """Polls the checker; a replica that exited on its own is a finding, and is started again."""
            for _ in range(half_seconds):
                time.sleep(0.5)
                checker.poll()
                for r in replicas:
                    if r.exited() is not None:
                        exits.append(f"{r.starts[-1][2]}: exit status {r.exited()}")
                        r.start()

        while count_cycles(replicas) < a.cycles and time.time() - started < a.minutes * 60:
            watch(rng.randint(4, 12))
            event = rng.choices(list(EVENTS) + ["nothing"], weights=list(EVENTS.values()) + [2])[0]
            if event not in allowed:
                event = "nothing"
            # The cluster grows by at most MAX_SCALE_OUTS instances; past that, a scale-out is another foreign
            # drain (drained, then made ACTIVE again empty: the imbalance an instance replacement leaves).
            if event == "scale-out" and counts["scale-outs"] >= MAX_SCALE_OUTS:
                event = "foreign-drain"
            if event == "kill":
                r = rng.choice(replicas)
                r.signal(signal.SIGKILL)
                r.proc.wait()
                time.sleep(rng.uniform(0, 3))
                r.start()
                counts["kills"] += 1
            elif event == "pause":
                # The leader, when one holds the lease: the deposed leader that wakes up is the case to test.
                r = leader(replicas, checker)
                counts["leader pauses"] += r is not None
                r = r or rng.choice(replicas)
                r.signal(signal.SIGSTOP)
                watch(int(a.lease * 4))
                r.signal(signal.SIGCONT)
                counts["pauses"] += 1
            elif event == "outage":
                proxy.cut()
                watch(rng.randint(4, 16))
                proxy.restore()
                counts["outages"] += 1
            elif event == "scale-out":
                snap = json.loads(urllib.request.urlopen(twin_url + "/__twin/snapshot").read())
                like = rng.choice(snap["containerInstances"])
                n = counts["scale-outs"]
                like = dict(like, containerInstanceArn=like["containerInstanceArn"].rsplit("/", 1)[0] + f"/chaos-{n}",
                            ec2InstanceId=f"i-chaos{n:05d}")
                req = urllib.request.Request(twin_url + "/__twin/instances", json.dumps(like).encode(), method="POST")
                urllib.request.urlopen(req).read()
                counts["scale-outs"] += 1
            elif event == "foreign-drain":
                if foreign:
                    arn = foreign.pop()
                    subprocess.run(cli + ["update-container-instances-state", "--cluster", a.cluster,
                                          "--container-instances", arn, "--status", "ACTIVE"],
                                   env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                else:
                    snap = json.loads(urllib.request.urlopen(twin_url + "/__twin/snapshot").read())
                    active = [i["containerInstanceArn"] for i in snap["containerInstances"] if i["status"] == "ACTIVE"]
                    arn = rng.choice(active)
                    subprocess.run(cli + ["update-container-instances-state", "--cluster", a.cluster,
                                          "--container-instances", arn, "--status", "DRAINING"],
                                   env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    foreign.append(arn)
                    counts["foreign drains"] += 1
        # Let what is in flight play out, with every fault but the soak's own stopped.
        settle = a.settle if a.settle is not None else 4 * a.lease + 60
        watch(int(settle * 2))
        verdict = checker.verdict(holders(replicas))
        with open(os.path.join(a.out, "checked.json"), "w") as f:
            json.dump(dict(checker.data, holders=holders(replicas)), f)
    finally:
        for r in replicas:
            r.signal(signal.SIGCONT)
            r.signal(signal.SIGTERM)
        for r in replicas:
            if r.proc:
                try:
                    r.proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    r.proc.kill()
        for proc in procs:
            proc.terminate()
    table_out = {
        "seed": a.seed,
        "wallMinutes": round((time.time() - started) / 60, 1),
        "cycles": count_cycles(replicas),
        **counts,
        **verdict,
        "replicaExits": exits,
    }
    print(json.dumps(table_out, indent=2))
    sys.exit(1 if any(verdict["violations"].values()) or exits else 0)


if __name__ == "__main__":
    main()
