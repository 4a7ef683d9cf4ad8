#!/usr/bin/env python3
"""Prints the figures of `make bench` as one table and writes them to target/bench/results.json.

Reads what each benchmark wrote to target/bench/: converge.json (bench converge), api.json
(bench api), borrowing.json (bench borrowing), console.json (bench console), ledger-ingest-<backend>.json and ledger-month-<backend>.json (the store's examples, on
SQLite and on PostgreSQL). A benchmark that
did not run is shown as missing, never guessed.
"""
import json
import os
import platform
import sys
from datetime import datetime, timezone

BENCH = os.path.join(os.path.dirname(__file__), "..", "target", "bench")


def load(name):
    try:
        with open(os.path.join(BENCH, name), encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def main():
    rows = []  # (figure, value, target)
    converge = load("converge.json") or []
    for run in converge:
        n = run["environments"]
        large = n >= 10_000
        after = run.get("floor_seconds_after")
        if after is None:
            rows.append((f"converge {n:,} environments: operator / floor",
                         f"{run['operator_seconds']:.2f} / {run['floor_seconds_before']:.2f} s", ""))
        else:
            rows.append((f"converge {n:,} environments: operator / floor before / floor after",
                         f"{run['operator_seconds']:.2f} / {run['floor_seconds_before']:.2f} / {after:.2f} s", ""))
        rows.append((f"converge {n:,} environments: ratio to the floor" + ("" if after is None else "s' mean"),
                     f"{run['ratio']:.2f}", "≤ 1.3" if large else "≤ 1.2 in 4 of 5 runs"))
        rows.append((f"  operator peak RSS at {n:,} environments", f"{run['operator_peak_rss_mib']:.1f} MiB", "" if large else "≤ 64 MiB"))
        if run.get("with_pods"):
            p = run["with_pods"]
            closed = " (a metering window closed over them)" if p.get("window_closed") else " (no metering window closed over them)"
            rows.append((f"  operator peak RSS at {n:,} environments and {p['pods']:,} running pods{closed}",
                         f"{p['operator_peak_rss_mib']:.1f} MiB", "≤ 256 MiB" if large else "≤ 64 MiB"))
            if "seconds_to_running" in p:
                rows.append((f"  {p['pods']:,} pods from the first one's creation to all Running",
                             f"{p['seconds_to_running']:.0f} s", ""))
            else:
                rows.append((f"  {p['pods']:,} running pods", f"failed: {p.get('error', 'unknown')}", ""))
        reqs = run.get("api_requests_per_environment")
        if reqs:
            sides = [s for s in ("direct_before", "operator", "direct_after") if reqs.get(s) is not None]
            per = " / ".join(f"{sum(reqs[side].values()):.1f}" for side in sides)
            names = {"direct_before": "floor before", "operator": "operator", "direct_after": "floor after"}
            rows.append(("  API requests per environment: " + " / ".join(names[s] for s in sides), per, ""))
        cpu = run.get("cpu_seconds")
        if cpu:
            keys = [k for k in ("cluster_direct_before", "cluster_operator", "cluster_direct_after") if cpu.get(k) is not None]
            names = {"cluster_direct_before": "floor before", "cluster_operator": "operator", "cluster_direct_after": "floor after"}
            rows.append(("  CPU seconds of the cluster: " + " / ".join(names[k] for k in keys),
                         " / ".join(f"{cpu[k]:.1f}" for k in keys), ""))
        if "resync_peak_rss_mib" in run:
            rows.append((f"  operator peak RSS restarted on the converged cluster ({n:,} environments)",
                         f"{run['resync_peak_rss_mib']:.1f} MiB", "≤ 256 MiB" if large else ""))
        if "idle_resync_writes" in run:
            rows.append((f"  objects written by an idle resync of {n:,} environments", f"{run['idle_resync_writes']}", "0"))
    thousand = [r["ratio"] for r in converge if r["environments"] == 1000]
    if thousand:
        met = sum(1 for r in thousand if r <= 1.2)
        rows.append((f"converge 1,000 environments: runs with ratio ≤ 1.2",
                     f"{met} of {len(thousand)} ({', '.join(f'{r:.2f}' for r in thousand)})", "≥ 4 of 5"))
    api = load("api.json")
    if api:
        c = api["clients"]
        for kind in ("reads", "writes"):
            a, d = api[kind]["api"], api[kind]["kube_direct"]
            target = "≤ 20 ms and ≤ the direct p99" if kind == "reads" else "≤ 300 ms"
            rows.append((f"API {kind} at {c} clients: p50 / p99", f"{a['p50_ms']:.1f} / {a['p99_ms']:.1f} ms", target))
            rows.append((f"  same {kind} straight to the API server: p50 / p99", f"{d['p50_ms']:.1f} / {d['p99_ms']:.1f} ms", ""))
            rows.append((f"  ratio of p50s", f"{api[kind]['p50_ratio']:.2f}", ""))
    borrowing = load("borrowing.json")
    if borrowing:
        st, bo = borrowing["static"], borrowing["borrowing"]
        rows.append(("borrowing: demanded pod-seconds served, static quotas / borrowing",
                     f"{100 * st['served']:.1f} / {100 * bo['served']:.1f} %", ""))
        rows.append(("  served with borrowing ÷ served with static quotas", f"{borrowing['served_ratio']:.2f}", "≥ 1.5"))
        rows.append(("  node CPU utilisation, static quotas / borrowing",
                     f"{100 * st['utilisation']:.1f} / {100 * bo['utilisation']:.1f} %", ""))
        rows.append(("  guaranteed pods to Running, static p50 / p99",
                     f"{st['p50']:.2f} / {st['p99']:.2f} s", ""))
        rows.append(("  guaranteed pods to Running, borrowing p50 / p99",
                     f"{bo['p50']:.2f} / {bo['p99']:.2f} s", f"p99 ≤ {2 * st['p99']:.2f} s (2× static + grace 0 s)"))
        rows.append(("  burst pods reclaimed (scheduler and operator)", f"{bo['reclaimed']}", ""))
        money = borrowing.get("settled")
        if money:
            rows.append(("  settled over the simulated day: burst charges / lent credits / platform",
                         f"{money['charges']:.2f} / {money['credits']:.2f} / {money['platform']:.2f} CNY",
                         f"{money['borrowers']} borrowing environments, {money['lenders']} lending bureaus"))
    console = load("console.json")
    if console:
        phases = [("paced", "paced"), ("pacedWithCloses", "paced, closes every 2 s"),
                  ("steady", "back to back"), ("withCloses", "back to back, closes every 2 s")]
        shown = [(k, n) for k, n in phases if k in console]
        for page in ("bureau", "finance", "evaluation", "audit", "bureaus", "approvals", "sign-in"):
            figures = [console[k][page] for k, _ in shown if page in console[k]]
            if len(figures) != len(shown):
                continue
            rows.append((f"console {page} page, 20 sessions: p99 " + " / ".join(n for _, n in shown),
                         " / ".join(f"{f['p99_ms']:.1f}" for f in figures) + " ms", "paced ≤ 50 ms"))
            rows.append(("  first visit with stylesheet and script", f"{figures[0]['first_load_bytes'] / 1024:.1f} KB", "< 100 KB"))
    ledger = {}
    for backend in ("sqlite", "postgres"):
        ingest = load(f"ledger-ingest-{backend}.json")
        if ingest:
            rows.append((f"ledger ingest ({backend}, batches of {ingest['batch']})",
                         f"{ingest['ingestIntervalsPerSecond']:,.0f} intervals/s", "≥ 100,000"))
        month = load(f"ledger-month-{backend}.json")
        if month:
            rows.append((f"ledger ingest of one month ({backend}, one transaction per hour)",
                         f"{month['ingestIntervalsPerSecond']:,.0f} intervals/s", "≥ 100,000"))
            rows.append((f"month statement ({backend}), {month['bureaus']:,} bureaus × {month['environments'] // month['bureaus']} environments, hourly",
                         f"{month['statementSecondsBest']:.3f} s (first {month['statementSecondsFirst']:.3f} s)", "≤ 1 s"))
            rows.append(("  intervals in that month", f"{month['intervals']:,}", ""))
            if "environmentReadSecondsBest" in month:
                rows.append((f"one environment's month as right-sizing reads it ({backend}), {month['environmentIntervals']:,} intervals",
                             f"{month['environmentReadSecondsBest'] * 1e3:.1f} ms (first {month['environmentReadSecondsFirst'] * 1e3:.1f} ms)", ""))
        audit = load(f"audit-{backend}.json")
        if audit:
            a, t = audit["alone"], audit["together"]
            rows.append((f"audit intent + outcome ({backend}): one writer, p50 / p99",
                         f"{a['p50_ms']:.2f} / {a['p99_ms']:.2f} ms", ""))
            rows.append((f"  {audit['writers']} concurrent writers: p50 / p99 / max",
                         f"{t['p50_ms']:.1f} / {t['p99_ms']:.1f} / {t['max_ms']:.1f} ms", ""))
        ledger[backend] = {"ingest": ingest, "month": month, "audit": audit}
    missing = [n for n, d in [("converge", converge), ("api", api), ("borrowing", borrowing), ("console", console)] + [(f"{what}-{b}", ledger[b][what]) for b in ledger for what in ("ingest", "month", "audit")] if not d]

    started = None
    try:
        with open(os.path.join(BENCH, "started"), encoding="utf-8") as f:
            started = int(f.read().strip())
    except (OSError, ValueError):
        pass
    wall = None
    if started is not None:
        wall = int(datetime.now(timezone.utc).timestamp()) - started
        rows.append(("make bench: wall time, builds included", f"{wall // 60} min {wall % 60} s", "< 45 min"))

    width = max(len(r[0]) for r in rows) if rows else 20
    print(f"{'figure':<{width}}  {'measured':<28}  target")
    for figure, value, target in rows:
        print(f"{figure:<{width}}  {value:<28}  {target}")
    for name in missing:
        print(f"(missing: {name} did not run)")
    results = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "system": platform.platform()},
        "converge": converge,
        "api": api,
        "borrowing": borrowing,
        "console": console,
        "ledger": ledger,
        "wall_seconds": wall,
    }
    with open(os.path.join(BENCH, "results.json"), "w", encoding="utf-8") as f:
        json.dump(results, f, indent=2)
    print("written to target/bench/results.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
