#!/usr/bin/env python3
"""Every metric a Grafana panel queries exists on a running server's /metrics.

    dashboard-metrics.py DASHBOARD.json METRICS_URL

Reads each panel's PromQL, takes the metric names out of it (identifiers that
are not functions, keywords or label names), and fails, naming the panel, for
any name the server's exposition does not list. Run by .ci/web-e2e after the
browser tests, so every family has samples by then.
"""
import json
import re
import sys
import urllib.request

FUNCTIONS = {
    "abs", "avg", "avg_over_time", "bottomk", "ceil", "changes", "clamp_max", "clamp_min",
    "count", "count_over_time", "delta", "deriv", "floor", "group", "histogram_quantile",
    "idelta", "increase", "irate", "label_replace", "max", "max_over_time", "min",
    "min_over_time", "quantile", "rate", "resets", "round", "scalar", "sort", "sort_desc",
    "stddev", "sum", "sum_over_time", "time", "topk", "vector",
}
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset", "and", "or", "unless"}


def metric_names(expr):
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)          # strings
    expr = re.sub(r"\{[^}]*\}", "", expr)                     # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)                    # range selectors
    expr = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", expr)  # grouping labels
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", expr):
        word = match.group(0)
        if word in FUNCTIONS or word in KEYWORDS:
            continue
        names.add(word)
    return names


def exposed(url):
    with urllib.request.urlopen(url, timeout=15) as response:
        text = response.read().decode()
    names = set()
    for line in text.splitlines():
        if line and not line.startswith("#"):
            names.add(re.split(r"[{\s]", line, maxsplit=1)[0])
    return names


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: dashboard-metrics.py DASHBOARD.json METRICS_URL")
    dashboard = json.load(open(sys.argv[1]))
    available = exposed(sys.argv[2])
    missing, checked = [], 0
    for panel in dashboard.get("panels", []):
        for target in panel.get("targets", []):
            for name in sorted(metric_names(target.get("expr", ""))):
                checked += 1
                if name not in available:
                    missing.append(f"{panel.get('title')}: {name}")
    if checked == 0:
        sys.exit("dashboard-metrics: no metric found in any panel (is this a dashboard?)")
    if missing:
        print("dashboard-metrics: metrics the dashboard queries but /metrics lacks:", file=sys.stderr)
        for line in missing:
            print(f"  {line}", file=sys.stderr)
        sys.exit(1)
    print(f"dashboard-metrics: all {checked} metric references of {sys.argv[1]} exist on /metrics", file=sys.stderr)


if __name__ == "__main__":
    main()
