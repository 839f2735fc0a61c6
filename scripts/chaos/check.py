"""The chaos soak's invariant checker (issue 18).

It trusts only data: the twin's journal of applied mutations (`GET /__twin/mutations`), the twin's state
(`GET /__twin/snapshot`, `GET /__twin/stats`) and the ledger table read raw through boto3. It shares no code with
the controller. `Checker.poll()` runs every few seconds during the soak (the lease's holder over time, services
against their floors); `Checker.verdict()` judges the whole run at the end.

The invariants (docs/operations.md states them as the controller's promises):

- claimed-first: every mutation the controller sent names a record claimed before it (a stop's `stoppedReason`
  holds its action id; a drain, its revert and a redeploy have a record of that kind for their target);
- fenced: no mutation came from a replica while the lease was provably another's: the same epoch seen just
  before and just after it, naming another holder or released (every takeover raises the epoch, so a replica that
  held the lease at any moment in between would have left a higher one);
- once: no action was sent twice (one SDK invocation per action; the SDK's retries share an invocation id);
- floor: no service was seen below its healthy floor, and the twin counted no floor violation;
- no-stranded-drain: no instance the controller drained stayed DRAINING past the action deadline, unless its
  record says ECS never confirmed the drain (then it cannot be told from someone else's, and is left to a person);
- foreign-drains: no instance someone else drained was set ACTIVE by the controller;
- terminal: every action reached a terminal state within its deadline.
"""

import json
import math
import time
import urllib.request
from datetime import datetime

TERMINAL = {"done", "failed", "abandoned"}
INVARIANTS = ["claimed-first", "fenced", "once", "floor", "no-stranded-drain", "foreign-drains", "terminal"]


def get_json(url):
    with urllib.request.urlopen(url, timeout=30) as r:
        return json.loads(r.read())


def ms(text):
    """An RFC 3339 time as epoch milliseconds."""
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def attr(item, name):
    v = item.get(name)
    if v is None:
        return None
    if "S" in v:
        return v["S"]
    if "N" in v:
        return int(float(v["N"]))
    if "BOOL" in v:
        return v["BOOL"]
    return v


class Checker:
    def __init__(self, twin_url, dynamodb, table, cluster, deadline_s, sender_pid):
        """`sender_pid(user_agent)` names the replica process that sent a mutation (None: not a replica)."""
        self.twin = twin_url.rstrip("/")
        self.db = dynamodb
        self.table = table
        self.cluster = cluster
        self.deadline_ms = int(deadline_s * 1000)
        self.sender_pid = sender_pid
        self.leases = []  # (wall ms, holder, epoch, released)
        self.violations = {k: [] for k in INVARIANTS}
        self.polls = 0

    def _items(self):
        items, start = [], None
        while True:
            kw = dict(
                TableName=self.table,
                KeyConditionExpression="pk = :pk",
                ExpressionAttributeValues={":pk": {"S": f"cluster#{self.cluster}"}},
                ConsistentRead=True,
            )
            if start:
                kw["ExclusiveStartKey"] = start
            out = self.db.query(**kw)
            items += out["Items"]
            start = out.get("LastEvaluatedKey")
            if not start:
                return items

    def poll(self):
        """One look: the lease, and every service against its floor."""
        now = int(time.time() * 1000)
        try:
            lease = self.db.get_item(
                TableName=self.table,
                Key={"pk": {"S": f"cluster#{self.cluster}"}, "sk": {"S": "lease"}},
                ConsistentRead=True,
            ).get("Item")
        except Exception:  # the table may be in an outage the soak made; the twin is still checked
            lease = None
        if lease:
            self.leases.append((now, attr(lease, "holder"), attr(lease, "epoch"), bool(attr(lease, "released"))))
        snap = get_json(self.twin + "/__twin/snapshot")
        self.polls += 1
        for s in snap.get("services", []):
            if s.get("status", "ACTIVE") != "ACTIVE" or s.get("schedulingStrategy") == "DAEMON":
                continue
            desired = s.get("desiredCount", 0)
            minimum = (s.get("deploymentConfiguration") or {}).get("minimumHealthyPercent", 100)
            floor = math.ceil(desired * minimum / 100)
            group = "service:" + s["serviceName"]
            running = sum(
                1
                for t in snap.get("tasks", [])
                if t.get("group") == group and t.get("lastStatus") == "RUNNING" and t.get("desiredStatus") == "RUNNING"
            )
            if running < floor:
                self.violations["floor"].append(f"{s['serviceName']}: {running} running, floor {floor} (poll {self.polls})")

    def _held_by_another(self, at, holder):
        """Whether the lease provably named someone else (or was released) all through `at`."""
        before = [l for l in self.leases if l[0] <= at]
        after = [l for l in self.leases if l[0] >= at]
        if not before or not after:
            return False
        b, a = before[-1], after[0]
        return b[2] == a[2] and (b[1] != holder or b[3])

    def verdict(self, holders):
        """Judges the run. `holders` maps a replica pid to the lease holder id it used."""
        journal = get_json(self.twin + "/__twin/mutations")
        stats = get_json(self.twin + "/__twin/stats")["stats"]
        records = [i for i in self._items() if attr(i, "sk").startswith("action#")]
        # Kept for a second look after the run (chaos.py writes them into its --out folder).
        self.data = {"journal": journal, "records": records, "leases": self.leases}
        now = int(time.time() * 1000)
        v = self.violations
        if stats.get("floor_violations", 0):
            v["floor"].append(f"the twin counted {stats['floor_violations']}: {stats.get('floor_violators')}")

        by_kind = {}
        for r in records:
            by_kind.setdefault(attr(r, "kind"), []).append(r)

        def claimed_before(kind, target, at):
            cands = [r for r in by_kind.get(kind, []) if attr(r, "target") == target and ms(attr(r, "claimedAt")) <= at]
            return max(cands, key=lambda r: ms(attr(r, "claimedAt")), default=None)

        invocations = {}  # action id -> set of invocation ids
        foreign = set()  # instances someone else has DRAINING
        ours = {}  # instance -> wall ms we set it DRAINING
        sent = 0
        for m in journal:
            at, op, req = ms(m["at"]), m["operation"], m["request"] or {}
            pid = self.sender_pid(m["userAgent"])
            if pid is None:  # someone else: the soak's own AWS CLI calls
                if op == "UpdateContainerInstancesState":
                    for arn in req.get("containerInstances", []):
                        if req.get("status") == "DRAINING":
                            foreign.add(arn)
                            ours.pop(arn, None)
                        else:
                            foreign.discard(arn)
                continue
            sent += 1
            holder = holders.get(pid)
            if holder is not None and self._held_by_another(at, holder):
                v["fenced"].append(f"seq {m['seq']} {op} by pid {pid} while the lease was another's")
            record = None
            if op == "StopTask":
                reason = req.get("reason", "")
                record = next((r for r in records if attr(r, "id") in reason), None)
                if record is None or ms(attr(record, "claimedAt")) > at:
                    v["claimed-first"].append(f"seq {m['seq']} StopTask {req.get('task')}: no record claimed before it ({reason!r})")
                    record = None
            elif op == "UpdateService":
                record = claimed_before("redeploy-service", req.get("service", "").split("/")[-1], at)
                if record is None:
                    v["claimed-first"].append(f"seq {m['seq']} UpdateService {req.get('service')}: no redeploy claimed before it")
            elif op == "UpdateContainerInstancesState":
                for arn in req.get("containerInstances", []):
                    record = claimed_before("drain-instance", arn, at)
                    if record is None:
                        v["claimed-first"].append(f"seq {m['seq']} {req.get('status')} {arn}: no drain claimed before it")
                    if req.get("status") == "DRAINING":
                        ours[arn] = at
                    else:
                        if arn in foreign:
                            v["foreign-drains"].append(f"seq {m['seq']}: set ACTIVE {arn}, which someone else drained")
                        drained = ours.pop(arn, None)
                        if drained is not None and at - drained > self.deadline_ms:
                            v["no-stranded-drain"].append(f"{arn} DRAINING by us for {(at - drained) / 1000:.0f} s")
                    if req.get("status") == "DRAINING" and record is not None:
                        invocations.setdefault(attr(record, "id") + "#drain", set()).add(m["invocationId"])
                record = None
            else:
                v["claimed-first"].append(f"seq {m['seq']} {op}: a mutation the controller never makes")
            if record is not None:
                invocations.setdefault(attr(record, "id"), set()).add(m["invocationId"])
        for arn, since in ours.items():
            latest = claimed_before("drain-instance", arn, now)
            # A drain ECS never confirmed (its sender died, or lost every answer, before recording it sent) cannot
            # be told from someone else's: the controller leaves it DRAINING and records it failed, saying so. That
            # is reported to a person, not stranded.
            reported = (
                latest is not None
                and attr(latest, "state") == "failed"
                and "never confirmed" in (attr(latest, "outcome") or "")
            )
            if now - since > self.deadline_ms and not reported:
                v["no-stranded-drain"].append(f"{arn} still DRAINING by us after {(now - since) / 1000:.0f} s")
        for action, invs in invocations.items():
            if len(invs) > 1:
                v["once"].append(f"{action} sent {len(invs)} times")
        outcomes = {}
        for r in records:
            state = attr(r, "state")
            outcomes[state] = outcomes.get(state, 0) + 1
            claimed, updated = ms(attr(r, "claimedAt")), ms(attr(r, "updatedAt"))
            end = updated if state in TERMINAL else now
            if end - claimed > self.deadline_ms:
                v["terminal"].append(f"{attr(r, 'id')} {state} {(end - claimed) / 1000:.0f} s after its claim")
        return {
            "mutations": len(journal),
            "mutationsByController": sent,
            "actions": len(records),
            "outcomes": outcomes,
            "polls": self.polls,
            "leaseObservations": len(self.leases),
            "violations": {k: len(x) for k, x in v.items()},
            "examples": {k: x[:5] for k, x in v.items() if x},
        }
