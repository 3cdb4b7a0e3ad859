#!/usr/bin/env python3
"""Checks of remora's Kubernetes packaging and monitoring kit (k8s/, Dockerfile).

Run by scripts/check-k8s.sh, one subcommand per check; each prints what it found and
exits non-zero on a failure. Needs PyYAML (installed with kubernetes-validate).

    k8s_checks.py split BUILD OUTDIR          core objects of a kustomize build, one file each
    k8s_checks.py crds BUILD                  PodMonitor / PrometheusRule structure
    k8s_checks.py sync-rules [--check]        (re)generate k8s/prometheus/prometheusrule.yaml
    k8s_checks.py rule-meta                   severity, summary, description, runbook_url
    k8s_checks.py metric-names                rules and dashboard use only metrics remora serves
    k8s_checks.py alert-coverage              every alert tested firing and not firing
    k8s_checks.py readme-anchors              docs/troubleshooting.md headings for every runbook_url anchor
    k8s_checks.py scrape-job BUILD PROM TOOL  the plain scrape job's relabeling in a real Prometheus
    k8s_checks.py consistency BUILD VARIANT   ports, paths, labels agree everywhere
    k8s_checks.py consistency-selftest BUILD  the consistency check catches renames
    k8s_checks.py variants NATIVE LEGACY      the two variants differ only where they must
    k8s_checks.py dashboard BUILD             the dashboard JSON and its ConfigMap
    k8s_checks.py dockerfile                  the Dockerfile's contract
    k8s_checks.py queries BUILD PROMETHEUS    every PromQL expression against a real server
    k8s_checks.py remora-check BUILD CMD...   exporter.yaml from the ConfigMap passes `remora check`
    k8s_checks.py component BUILD KUBECTL     the remora-sidecar component on a user's own Deployment

Paths are relative to the repository root (the current directory).
"""

from __future__ import annotations

import copy
import json
import math
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import yaml

RULES_FILE = Path("k8s/prometheus/remora-alerts.rules.yml")
PROMETHEUS_RULE_FILE = Path("k8s/prometheus/prometheusrule.yaml")
SCRAPE_FILE = Path("k8s/prometheus/scrape-config.yml")
DASHBOARD_FILE = Path("k8s/grafana/remora-dashboard.json")
ALERT_TESTS = Path("tests/k8s/alerts_test.yml")
DOCKERFILE = Path("Dockerfile")
RUNBOOKS = Path("docs/troubleshooting.md")

RUNBOOK_BASE = "https://github.com/remora-exporter/remora/blob/main/docs/troubleshooting.md"
JOB = "remora"
REMORA_CONTAINER = "remora"
SIDECAR_LABEL = ("remora-exporter/sidecar", "true")
SEVERITIES = {"critical", "warning", "info"}
CRD_GROUP = "monitoring.coreos.com"

# Values the Grafana variables take when the dashboard's expressions are sent to Prometheus.
GRAFANA_VARS = {
    "__rate_interval": "1m",
    "__interval": "1m",
    "__range": "1h",
    "target": "demo-app",
    "namespace": "default",
    "pod": "demo-app-0",
    "datasource": "prometheus",
}


# ----------------------------------------------------------------------------- helpers


class CheckError(Exception):
    """A check found problems; the message lists them."""


def fail_if(errors: list[str]) -> None:
    if errors:
        raise CheckError("\n".join(f"  - {e}" for e in errors))


def load_build(path: str) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d]


def load_yaml(path: Path):
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


def is_crd_object(doc: dict) -> bool:
    return str(doc.get("apiVersion", "")).split("/")[0] == CRD_GROUP


def find(docs: list[dict], kind: str) -> list[dict]:
    return [d for d in docs if d.get("kind") == kind]


def get(obj, *keys, default=None):
    for k in keys:
        if isinstance(obj, dict) and k in obj:
            obj = obj[k]
        elif isinstance(obj, list) and isinstance(k, int) and -len(obj) <= k < len(obj):
            obj = obj[k]
        else:
            return default
    return obj


_QUANTITY = re.compile(r"^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?$")
_SUFFIX = {
    None: 1, "n": 1e-9, "u": 1e-6, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18,
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
}


def quantity(s) -> float:
    """A Kubernetes resource quantity (`64Mi`, `200m`, `1`) as a number."""
    m = _QUANTITY.match(str(s).strip())
    if not m:
        raise ValueError(f"not a quantity: {s!r}")
    return float(m.group(1)) * _SUFFIX[m.group(2)]


def port_of(address: str) -> int | None:
    m = re.search(r":(\d+)$", str(address))
    return int(m.group(1)) if m else None


def pod_spec(deploy: dict) -> dict:
    return get(deploy, "spec", "template", "spec", default={}) or {}


def all_containers(spec: dict) -> list[tuple[str, dict]]:
    out = [("initContainers", c) for c in spec.get("initContainers") or []]
    out += [("containers", c) for c in spec.get("containers") or []]
    return out


def remora_deployments(docs: list[dict]) -> list[dict]:
    return [
        d for d in find(docs, "Deployment")
        if any(c.get("name") == REMORA_CONTAINER for _, c in all_containers(pod_spec(d)))
    ]


def the_remora(docs: list[dict]) -> tuple[dict, str, dict]:
    deps = remora_deployments(docs)
    if len(deps) != 1:
        raise CheckError(f"  - expected one Deployment with a {REMORA_CONTAINER!r} container, found {len(deps)}")
    spec = pod_spec(deps[0])
    where, c = next((w, c) for w, c in all_containers(spec) if c.get("name") == REMORA_CONTAINER)
    return deps[0], where, c


def flags(args: list[str]) -> dict[str, str]:
    out = {}
    for a in args or []:
        if a.startswith("--"):
            k, _, v = a.partition("=")
            out[k] = v
    return out


def exporter_config(docs: list[dict], container: dict, spec: dict) -> tuple[dict, str, list[str]]:
    """The exporter.yaml the remora container reads: (parsed, text, errors)."""
    errors = []
    cfg_path = flags(container.get("args") or []).get("--config.file", "")
    cfg_dir, _, cfg_name = cfg_path.rpartition("/")
    mounts = [m for m in container.get("volumeMounts") or [] if m.get("mountPath") == cfg_dir]
    if not mounts:
        errors.append(f"no volumeMount at {cfg_dir!r} (the directory of --config.file={cfg_path})")
        return {}, "", errors
    mount = mounts[0]
    if mount.get("subPath") or mount.get("subPathExpr"):
        errors.append(f"the config volume is mounted with subPath at {cfg_dir}: ConfigMap updates never reach it")
    volume = next((v for v in spec.get("volumes") or [] if v.get("name") == mount.get("name")), None)
    cm_name = get(volume, "configMap", "name")
    if not cm_name:
        errors.append(f"volume {mount.get('name')!r} mounted at {cfg_dir} is not a ConfigMap volume")
        return {}, "", errors
    if get(volume, "configMap", "items"):
        errors.append(f"volume {mount.get('name')!r} selects items; mount the whole ConfigMap")
    cms = [d for d in find(docs, "ConfigMap") if get(d, "metadata", "name") == cm_name]
    if not cms:
        errors.append(f"ConfigMap {cm_name!r} (volume {mount.get('name')!r}) is not in the build")
        return {}, "", errors
    text = get(cms[0], "data", cfg_name)
    if text is None:
        errors.append(f"ConfigMap {cm_name!r} has no key {cfg_name!r} (from --config.file={cfg_path})")
        return {}, "", errors
    return yaml.safe_load(text) or {}, text, errors


def selector_matches(selector: dict, labels: dict) -> bool:
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for e in selector.get("matchExpressions") or []:
        key, op, values = e.get("key"), e.get("operator"), e.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def sd_name(key: str) -> str:
    """How Prometheus's Kubernetes discovery spells a label or annotation name."""
    return re.sub(r"[^a-zA-Z0-9_]", "_", key)


def relabel_keeps(relabels: list[dict], source: str, value: str) -> bool:
    for r in relabels:
        if r.get("action") == "keep" and r.get("source_labels") == [source]:
            return re.fullmatch(str(r.get("regex", "(.*)")), value) is not None
    return False


def rule_groups() -> list[dict]:
    return load_yaml(RULES_FILE).get("groups") or []


def all_rules() -> list[dict]:
    return [r for g in rule_groups() for r in g.get("rules") or []]


def alerts() -> list[dict]:
    return [r for r in all_rules() if "alert" in r]


def dashboard_panels(dash: dict) -> list[dict]:
    out = []
    for p in dash.get("panels") or []:
        out.append(p)
        out.extend(p.get("panels") or [])
    return out


def dashboard_exprs(dash: dict) -> list[tuple[str, str]]:
    """(where, expr) for every panel query and query variable."""
    out = []
    for p in dashboard_panels(dash):
        for t in p.get("targets") or []:
            if t.get("expr"):
                out.append((f"panel {p.get('title')!r} ref {t.get('refId')}", t["expr"]))
    for v in get(dash, "templating", "list", default=[]) or []:
        if v.get("type") != "query":
            continue
        q = v.get("query")
        q = q.get("query") if isinstance(q, dict) else q
        m = re.fullmatch(r"\s*label_values\((.*),\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)\s*", q or "")
        if m:
            out.append((f"variable {v.get('name')!r}", m.group(1)))
        elif q and not re.fullmatch(r"\s*label_values\(\s*[a-zA-Z_][a-zA-Z0-9_]*\s*\)\s*", q):
            out.append((f"variable {v.get('name')!r}", q))
    return out


def substitute_grafana(expr: str) -> str:
    def repl(m: re.Match) -> str:
        name = m.group(1) or m.group(2)
        if name not in GRAFANA_VARS:
            raise CheckError(f"  - unknown Grafana variable ${name} in {expr!r}")
        return GRAFANA_VARS[name]

    return re.sub(r"\$\{([a-zA-Z_][a-zA-Z0-9_]*)(?::[a-z]+)?\}|\$([a-zA-Z_][a-zA-Z0-9_]*)", repl, expr)


def prometheus_rule_text() -> str:
    """prometheusrule.yaml as generated from the plain rule file."""
    body = RULES_FILE.read_text(encoding="utf-8")
    start = body.index("groups:")
    indented = "".join(("  " + line if line.strip() else line) for line in body[start:].splitlines(True))
    return (
        "# GENERATED from remora-alerts.rules.yml by `python3 tests/k8s/k8s_checks.py sync-rules`:\n"
        "# edit that file, then regenerate. scripts/check-k8s.sh fails when the two differ.\n"
        "#\n"
        "# The Prometheus Operator loads it when the Prometheus object's ruleSelector selects it\n"
        "# (kube-prometheus-stack: label `release: <its Helm release>`, or install it with\n"
        "# prometheus.prometheusSpec.ruleSelectorNilUsesHelmValues=false).\n"
        "apiVersion: monitoring.coreos.com/v1\n"
        "kind: PrometheusRule\n"
        "metadata:\n"
        "  name: remora\n"
        "  labels:\n"
        "    app.kubernetes.io/name: remora\n"
        "spec:\n" + indented
    )


# ------------------------------------------------------------------------------ checks


def cmd_split(build: str, outdir: str) -> None:
    docs = load_build(build)
    os.makedirs(outdir, exist_ok=True)
    n = 0
    for d in docs:
        if is_crd_object(d):
            print(f"  (skipped {d['kind']}/{get(d, 'metadata', 'name')}: custom resource, checked by `crds`)")
            continue
        name = f"{d['kind']}-{get(d, 'metadata', 'name')}.yaml".lower()
        with open(os.path.join(outdir, name), "w", encoding="utf-8") as f:
            yaml.safe_dump(d, f, sort_keys=False)
        n += 1
    if n == 0:
        raise CheckError("  - no core objects in the build")
    print(f"  {n} core objects written to {outdir}")


# A hand-written structural schema for the Prometheus Operator objects used here: the
# fields the Operator's monitoring.coreos.com/v1 API defines (a subset; unknown keys at
# these levels are reported, since the API server would silently prune them).
_RELABEL_KEYS = {"sourceLabels", "separator", "targetLabel", "regex", "modulus", "replacement", "action"}
_RELABEL_ACTIONS = {"replace", "keep", "drop", "hashmod", "labelmap", "labeldrop", "labelkeep",
                    "lowercase", "uppercase", "keepequal", "dropequal"}
_ENDPOINT_KEYS = {"port", "portNumber", "targetPort", "path", "scheme", "params", "interval",
                  "scrapeTimeout", "honorLabels", "honorTimestamps", "trackTimestampsStaleness",
                  "metricRelabelings", "relabelings", "proxyUrl", "followRedirects", "enableHttp2",
                  "filterRunning", "basicAuth", "bearerTokenSecret", "authorization", "oauth2",
                  "tlsConfig", "noProxy", "proxyFromEnvironment", "proxyConnectHeader"}
_PODMONITOR_SPEC_KEYS = {"selector", "namespaceSelector", "podMetricsEndpoints", "jobLabel",
                         "podTargetLabels", "sampleLimit", "targetLimit", "labelLimit",
                         "labelNameLengthLimit", "labelValueLengthLimit", "keepDroppedTargets",
                         "attachMetadata", "scrapeClass", "scrapeProtocols", "bodySizeLimit",
                         "selectorMechanism", "fallbackScrapeProtocol", "scrapeClassicHistograms",
                         "nativeHistogramBucketLimit", "nativeHistogramMinBucketFactor",
                         "convertClassicHistogramsToNHCB"}
_RULE_GROUP_KEYS = {"name", "interval", "rules", "limit", "partial_response_strategy",
                    "query_offset", "labels"}
_RULE_KEYS = {"alert", "record", "expr", "for", "keep_firing_for", "labels", "annotations"}
_DURATION = re.compile(r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$")


def _check_keys(obj, allowed: set[str], where: str, errors: list[str]) -> None:
    if not isinstance(obj, dict):
        errors.append(f"{where}: expected a mapping, found {type(obj).__name__}")
        return
    for k in obj:
        if k not in allowed:
            errors.append(f"{where}: unknown field {k!r}")


def _check_duration(v, where: str, errors: list[str]) -> None:
    if v is not None and (not isinstance(v, str) or not _DURATION.match(v) or v == ""):
        errors.append(f"{where}: {v!r} is not a Prometheus duration")


def _check_meta(d: dict, where: str, errors: list[str]) -> None:
    name = get(d, "metadata", "name")
    if not isinstance(name, str) or not re.fullmatch(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?", name or ""):
        errors.append(f"{where}: metadata.name {name!r} is not a valid object name")
    for k, v in (get(d, "metadata", "labels") or {}).items():
        if not isinstance(v, str):
            errors.append(f"{where}: label {k} has a non-string value {v!r}")


def check_podmonitor(d: dict, errors: list[str]) -> None:
    where = f"PodMonitor/{get(d, 'metadata', 'name')}"
    _check_meta(d, where, errors)
    _check_keys(d, {"apiVersion", "kind", "metadata", "spec"}, where, errors)
    spec = d.get("spec") or {}
    _check_keys(spec, _PODMONITOR_SPEC_KEYS, f"{where}.spec", errors)
    sel = spec.get("selector")
    if not isinstance(sel, dict):
        errors.append(f"{where}.spec.selector: required")
    else:
        _check_keys(sel, {"matchLabels", "matchExpressions"}, f"{where}.spec.selector", errors)
        for k, v in (sel.get("matchLabels") or {}).items():
            if not isinstance(v, str):
                errors.append(f"{where}.spec.selector.matchLabels.{k}: {v!r} is not a string")
    eps = spec.get("podMetricsEndpoints")
    if not isinstance(eps, list) or not eps:
        errors.append(f"{where}.spec.podMetricsEndpoints: expected a non-empty list")
        eps = []
    for i, ep in enumerate(eps):
        w = f"{where}.spec.podMetricsEndpoints[{i}]"
        _check_keys(ep, _ENDPOINT_KEYS, w, errors)
        if not isinstance(ep.get("port", ""), str):
            errors.append(f"{w}.port: must be a port name (string)")
        for key in ("interval", "scrapeTimeout"):
            _check_duration(ep.get(key), f"{w}.{key}", errors)
        if ep.get("path") is not None and not str(ep["path"]).startswith("/"):
            errors.append(f"{w}.path: must start with /")
        for key in ("relabelings", "metricRelabelings"):
            for j, r in enumerate(ep.get(key) or []):
                rw = f"{w}.{key}[{j}]"
                _check_keys(r, _RELABEL_KEYS, rw, errors)
                action = str(r.get("action", "replace")).lower()
                if action not in _RELABEL_ACTIONS:
                    errors.append(f"{rw}.action: {r.get('action')!r} is not a relabel action")
                if action == "replace" and "targetLabel" not in r:
                    errors.append(f"{rw}: replace needs targetLabel")


def check_prometheusrule(d: dict, errors: list[str]) -> None:
    where = f"PrometheusRule/{get(d, 'metadata', 'name')}"
    _check_meta(d, where, errors)
    _check_keys(d, {"apiVersion", "kind", "metadata", "spec"}, where, errors)
    spec = d.get("spec") or {}
    _check_keys(spec, {"groups"}, f"{where}.spec", errors)
    names = set()
    for i, g in enumerate(spec.get("groups") or []):
        w = f"{where}.spec.groups[{i}]"
        _check_keys(g, _RULE_GROUP_KEYS, w, errors)
        if not g.get("name") or g["name"] in names:
            errors.append(f"{w}.name: missing or duplicate")
        names.add(g.get("name"))
        for j, r in enumerate(g.get("rules") or []):
            rw = f"{w}.rules[{j}]"
            _check_keys(r, _RULE_KEYS, rw, errors)
            if ("alert" in r) == ("record" in r):
                errors.append(f"{rw}: exactly one of alert and record")
            if not isinstance(r.get("expr"), str) or not r["expr"].strip():
                errors.append(f"{rw}.expr: required string")
            _check_duration(r.get("for"), f"{rw}.for", errors)
            for key in ("labels", "annotations"):
                for k, v in (r.get(key) or {}).items():
                    if not isinstance(v, str):
                        errors.append(f"{rw}.{key}.{k}: {v!r} is not a string")
    if not spec.get("groups"):
        errors.append(f"{where}.spec.groups: empty")


def cmd_crds(build: str) -> None:
    docs = load_build(build)
    errors: list[str] = []
    seen = set()
    for d in docs:
        if not is_crd_object(d):
            continue
        if d.get("apiVersion") != f"{CRD_GROUP}/v1":
            errors.append(f"{d.get('kind')}: apiVersion {d.get('apiVersion')!r}, expected {CRD_GROUP}/v1")
        if d.get("kind") == "PodMonitor":
            check_podmonitor(d, errors)
        elif d.get("kind") == "PrometheusRule":
            check_prometheusrule(d, errors)
        else:
            errors.append(f"unexpected custom resource {d.get('kind')}")
        seen.add(d.get("kind"))
    for kind in ("PodMonitor", "PrometheusRule"):
        if kind not in seen:
            errors.append(f"no {kind} in the build")
    fail_if(errors)
    print(f"  PodMonitor and PrometheusRule are well-formed ({CRD_GROUP}/v1)")


def cmd_sync_rules(check: bool) -> None:
    want = prometheus_rule_text()
    if check:
        have = PROMETHEUS_RULE_FILE.read_text(encoding="utf-8") if PROMETHEUS_RULE_FILE.exists() else ""
        if have != want:
            raise CheckError(
                f"  - {PROMETHEUS_RULE_FILE} differs from {RULES_FILE}; regenerate it with "
                "`python3 tests/k8s/k8s_checks.py sync-rules`"
            )
        if load_yaml(PROMETHEUS_RULE_FILE)["spec"] != load_yaml(RULES_FILE):
            raise CheckError("  - PrometheusRule spec and the rule file parse differently")
        print(f"  {PROMETHEUS_RULE_FILE} matches {RULES_FILE}")
    else:
        PROMETHEUS_RULE_FILE.write_text(want, encoding="utf-8")
        print(f"  wrote {PROMETHEUS_RULE_FILE}")


def cmd_rule_meta() -> None:
    errors = []
    names = set()
    for r in alerts():
        name = r["alert"]
        if name in names:
            errors.append(f"{name}: defined twice")
        names.add(name)
        sev = get(r, "labels", "severity")
        if sev not in SEVERITIES:
            errors.append(f"{name}: labels.severity {sev!r} is not one of {sorted(SEVERITIES)}")
        ann = r.get("annotations") or {}
        for key in ("summary", "description", "runbook_url"):
            if not str(ann.get(key, "")).strip():
                errors.append(f"{name}: annotations.{key} missing")
        want = f"{RUNBOOK_BASE}#{name.lower()}"
        if ann.get("runbook_url") != want:
            errors.append(f"{name}: runbook_url {ann.get('runbook_url')!r}, expected {want!r}")
    if not names:
        errors.append(f"no alerts in {RULES_FILE}")
    fail_if(errors)
    print(f"  {len(names)} alerts, each with severity, summary, description and runbook_url")


# What remora serves (SPEC sections 7 and 8, as Prometheus names), besides the series
# the example exporter.yaml extracts and Prometheus's own `up`.
SERVED_METRICS = {
    "up", "target_info",
    "remora_build_info", "remora_target_up", "remora_target_poll_duration_seconds",
    "remora_target_polls_total", "remora_target_http_status_code", "remora_target_response_size_bytes",
    "remora_target_last_success_timestamp_seconds", "remora_target_series",
    "remora_extraction_errors_total", "remora_series_dropped_total", "remora_collector_up",
    "remora_collector_duration_seconds", "remora_config_last_reload_successful",
    "remora_config_last_reload_success_timestamp_seconds",
    "process_cpu_seconds_total", "process_resident_memory_bytes", "process_virtual_memory_bytes",
    "process_open_fds", "process_max_fds", "process_start_time_seconds",
    "container_cpu_time_seconds_total", "container_cpu_throttled_time_seconds_total",
    "container_cpu_limit", "container_memory_usage_bytes", "container_memory_limit_bytes",
    "container_memory_working_set_bytes",
    "process_cpu_time_seconds_total", "process_memory_usage_bytes", "process_memory_virtual_bytes",
    "process_thread_count", "process_unix_file_descriptor_count", "process_uptime_seconds",
    "process_count", "k8s_container_memory_limit_bytes", "k8s_container_cpu_limit",
}
_UNIT_SUFFIX = {"s": "_seconds", "By": "_bytes", "1": "_ratio"}
_PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset",
                 "and", "or", "unless", "inf", "nan"}


def example_metrics() -> set[str]:
    """Prometheus names of the instruments the example exporter.yaml defines."""
    cfg = load_yaml(Path("k8s/base/exporter.yaml"))
    out = set()
    for t in cfg.get("targets") or []:
        for m in t.get("metrics") or []:
            names = [m["name"]] if "values" not in m else [f"{m['name']}.{k}" for k in m["values"]]
            for n in names:
                n = n.replace(".", "_") + _UNIT_SUFFIX.get(str(m.get("unit", "")), "")
                out.add(n + ("_total" if m.get("kind") == "counter" else ""))
    return out


def metric_names(expr: str) -> set[str]:
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    e = re.sub(r"\{[^}]*\}", " ", e)
    e = re.sub(r"\[[^\]]*\]", " ", e)
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    names = set()
    for m in re.finditer(r"(?<![\w.])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?", e):
        if m.group(2) or m.group(1).lower() in _PROMQL_WORDS:
            continue
        names.add(m.group(1))
    return names


def cmd_metric_names() -> None:
    known = SERVED_METRICS | example_metrics()
    dash = json.loads(DASHBOARD_FILE.read_text(encoding="utf-8"))
    exprs = [(f"alert {r.get('alert')}", r["expr"]) for r in all_rules()]
    exprs += [(w, substitute_grafana(e)) for w, e in dashboard_exprs(dash)]
    errors, used = [], set()
    for where, expr in exprs:
        for n in metric_names(expr):
            used.add(n)
            if n not in known:
                errors.append(f"{where}: {n} is not a metric remora serves")
    fail_if(errors)
    print(f"  {len(used)} metric names used, all served by remora or defined by the example exporter.yaml")


def cmd_alert_coverage() -> None:
    tests = load_yaml(ALERT_TESTS)
    firing: dict[str, int] = {}
    quiet: dict[str, int] = {}
    for t in tests.get("tests") or []:
        for a in t.get("alert_rule_test") or []:
            name = a.get("alertname")
            target = firing if a.get("exp_alerts") else quiet
            target[name] = target.get(name, 0) + 1
    errors = []
    names = [r["alert"] for r in alerts()]
    for name in names:
        if not firing.get(name):
            errors.append(f"{name}: no test where it fires")
        if not quiet.get(name):
            errors.append(f"{name}: no test where it stays quiet")
    for name in set(firing) | set(quiet):
        if name not in names:
            errors.append(f"{name}: tested but not defined")
    fail_if(errors)
    print(f"  {len(names)} alerts, each tested firing ({sum(firing.values())} cases) and not firing ({sum(quiet.values())} cases)")


def github_anchor(heading: str) -> str:
    s = heading.strip().lower()
    s = re.sub(r"[^\w\- ]", "", s)
    return s.replace(" ", "-")


def cmd_readme_anchors() -> int:
    """0: all anchors exist; 1: some missing; 2: the runbook file is missing or has no
    heading for any alert (scripts/check-k8s.sh fails on both)."""
    names = [r["alert"] for r in alerts()]
    if not RUNBOOKS.exists():
        print(f"  {RUNBOOKS} is missing (the alerts' runbook_url anchors point into it)")
        return 2
    text = RUNBOOKS.read_text(encoding="utf-8")
    in_code = False
    anchors = set()
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            in_code = not in_code
            continue
        m = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if m and not in_code:
            anchors.add(github_anchor(m.group(1)))
    present = [n for n in names if n.lower() in anchors]
    if not present:
        print(f"  {RUNBOOKS} has no heading for any alert (expected: {', '.join(names)})")
        return 2
    missing = [n for n in names if n.lower() not in anchors]
    if missing:
        print(f"  {RUNBOOKS} lacks headings (anchors) for: " + ", ".join(missing))
        return 1
    print(f"  {RUNBOOKS} has a heading for each of the {len(names)} alerts' runbook_url anchors")
    return 0


def consistency_errors(docs: list[dict], variant: str, scrape: dict, rules_text: str,
                       dashboard_text: str, dockerfile: str) -> list[str]:
    errors: list[str] = []
    try:
        deploy, where, rc = the_remora(docs)
    except CheckError as e:
        return [str(e).strip(" -")]
    spec = pod_spec(deploy)
    tmpl_meta = get(deploy, "spec", "template", "metadata", default={}) or {}
    pod_labels = tmpl_meta.get("labels") or {}
    annotations = tmpl_meta.get("annotations") or {}
    containers = {c.get("name"): c for _, c in all_containers(spec)}

    # Native sidecar or regular container.
    if variant == "native":
        if where != "initContainers" or rc.get("restartPolicy") != "Always":
            errors.append("native variant: remora must be an init container with restartPolicy: Always")
    elif variant == "legacy":
        if where != "containers" or "restartPolicy" in rc:
            errors.append("legacy variant: remora must be a regular container without restartPolicy")
        if any(c.get("restartPolicy") == "Always" for c in spec.get("initContainers") or []):
            errors.append("legacy variant: an init container still has restartPolicy: Always")
    else:
        errors.append(f"unknown variant {variant!r}")

    # Flags.
    f = flags(rc.get("args") or [])
    listen = f.get("--web.listen-address", "")
    port = port_of(listen)
    if port is None:
        errors.append(f"--web.listen-address {listen!r} has no port")
    if f.get("--config.file") != "/etc/remora/exporter.yaml":
        errors.append(f"--config.file is {f.get('--config.file')!r}, expected /etc/remora/exporter.yaml")
    if "--web.enable-lifecycle" not in f:
        errors.append("--web.enable-lifecycle is missing (POST /-/reload)")
    if f.get("--log.format") != "json":
        errors.append("--log.format=json is missing")

    # Container port.
    ports = [p for p in rc.get("ports") or [] if p.get("containerPort") == port]
    port_name = ports[0].get("name") if ports else None
    if not ports:
        errors.append(f"remora has no containerPort {port} (from --web.listen-address)")
    elif not port_name:
        errors.append(f"remora's containerPort {port} has no name")
    port_refs = {port, port_name} - {None}

    # The configuration it reads.
    cfg, _, cfg_errors = exporter_config(docs, rc, spec)
    errors += cfg_errors
    server = cfg.get("server") or {}
    metrics_path = server.get("metrics_path", "/metrics")
    if f.get("--web.telemetry-path", metrics_path) != metrics_path:
        errors.append(f"--web.telemetry-path {f['--web.telemetry-path']!r} differs from server.metrics_path {metrics_path!r}")
    if cfg and port_of(server.get("listen", "")) != port:
        errors.append(f"server.listen {server.get('listen')!r} in exporter.yaml differs from --web.listen-address {listen!r}")

    # Probes.
    want_probes = {"livenessProbe": "/-/healthy", "readinessProbe": "/-/ready", "startupProbe": None}
    for probe, path in want_probes.items():
        hg = get(rc, probe, "httpGet")
        if not hg:
            errors.append(f"remora has no {probe} (httpGet)")
            continue
        if path and hg.get("path") != path:
            errors.append(f"{probe} path {hg.get('path')!r}, expected {path}")
        if hg.get("path") not in ("/-/healthy", "/-/ready"):
            errors.append(f"{probe} path {hg.get('path')!r} is not /-/healthy or /-/ready")
        if hg.get("port") not in port_refs:
            errors.append(f"{probe} port {hg.get('port')!r} is not remora's port ({port_name} / {port})")

    # Pod annotations and labels.
    if annotations.get("prometheus.io/scrape") != "true":
        errors.append("pod annotation prometheus.io/scrape is not \"true\"")
    if annotations.get("prometheus.io/port") != str(port):
        errors.append(f"pod annotation prometheus.io/port {annotations.get('prometheus.io/port')!r} is not remora's port {port}")
    if annotations.get("prometheus.io/path") != metrics_path:
        errors.append(f"pod annotation prometheus.io/path {annotations.get('prometheus.io/path')!r} differs from {metrics_path!r}")
    if pod_labels.get(SIDECAR_LABEL[0]) != SIDECAR_LABEL[1]:
        errors.append(f"pod template lacks the label {SIDECAR_LABEL[0]}: \"{SIDECAR_LABEL[1]}\"")

    # Service.
    services = [s for s in find(docs, "Service") if selector_matches({"matchLabels": get(s, "spec", "selector") or {}}, pod_labels)]
    if not services:
        errors.append("no Service selects the pod")
    for s in services:
        sp = [p for p in get(s, "spec", "ports", default=[]) or [] if p.get("targetPort") in port_refs]
        if not sp:
            errors.append(f"Service {get(s, 'metadata', 'name')} has no port targeting remora's {port_name} / {port}")
        elif sp[0].get("name") != port_name:
            errors.append(f"Service {get(s, 'metadata', 'name')} names remora's port {sp[0].get('name')!r}, the container {port_name!r}")

    # PodMonitor.
    pms = [p for p in find(docs, "PodMonitor") if selector_matches(get(p, "spec", "selector") or {}, pod_labels)]
    if not pms:
        errors.append("no PodMonitor selects the pod template's labels")
    for pm in pms:
        name = get(pm, "metadata", "name")
        eps = get(pm, "spec", "podMetricsEndpoints", default=[]) or []
        if not eps:
            errors.append(f"PodMonitor {name} has no podMetricsEndpoints")
        for ep in eps:
            if ep.get("port") != port_name:
                errors.append(f"PodMonitor {name} scrapes port {ep.get('port')!r}, remora's port is named {port_name!r}")
            if ep.get("path", "/metrics") != metrics_path:
                errors.append(f"PodMonitor {name} path {ep.get('path')!r} differs from {metrics_path!r}")
            jobs = [r.get("replacement") for r in ep.get("relabelings") or [] if r.get("targetLabel") == "job"]
            if jobs != [JOB]:
                errors.append(f"PodMonitor {name} sets job to {jobs}, expected [{JOB!r}]")

    # Plain Prometheus scrape job.
    jobs = scrape.get("scrape_configs") or []
    if [j.get("job_name") for j in jobs] != [JOB]:
        errors.append(f"{SCRAPE_FILE}: expected one job named {JOB!r}, found {[j.get('job_name') for j in jobs]}")
    for j in jobs:
        rl = j.get("relabel_configs") or []
        if j.get("metrics_path", metrics_path) != metrics_path:
            errors.append(f"{SCRAPE_FILE}: metrics_path {j.get('metrics_path')!r} differs from {metrics_path!r}")
        lab = f"__meta_kubernetes_pod_label_{sd_name(SIDECAR_LABEL[0])}"
        if not relabel_keeps(rl, lab, pod_labels.get(SIDECAR_LABEL[0], "")):
            errors.append(f"{SCRAPE_FILE}: no keep on {lab} that keeps the pod's label value")
        scrape_ann = "__meta_kubernetes_pod_annotation_" + sd_name("prometheus.io/scrape")
        if not relabel_keeps(rl, scrape_ann, annotations.get("prometheus.io/scrape", "")):
            errors.append(f"{SCRAPE_FILE}: no keep on {scrape_ann} that keeps the pod's annotation")
        port_ann = "__meta_kubernetes_pod_annotation_" + sd_name("prometheus.io/port")
        if not any(r.get("action") == "keepequal" and r.get("target_label") == port_ann
                   and r.get("source_labels") == ["__meta_kubernetes_pod_container_port_number"] for r in rl):
            errors.append(f"{SCRAPE_FILE}: no keepequal of the container port against {port_ann}")
        path_ann = "__meta_kubernetes_pod_annotation_" + sd_name("prometheus.io/path")
        if not any(r.get("source_labels") == [path_ann] and r.get("target_label") == "__metrics_path__" for r in rl):
            errors.append(f"{SCRAPE_FILE}: {path_ann} is not copied to __metrics_path__")
        for tl, src in (("namespace", "__meta_kubernetes_namespace"), ("pod", "__meta_kubernetes_pod_name")):
            if not any(r.get("target_label") == tl and r.get("source_labels") == [src] for r in rl):
                errors.append(f"{SCRAPE_FILE}: no {tl} label from {src} (the alerts join on namespace, pod)")
        for r in rl:
            if r.get("source_labels") == ["__meta_kubernetes_pod_container_init"] and r.get("action") in ("drop", "keep"):
                errors.append(f"{SCRAPE_FILE}: filters on __meta_kubernetes_pod_container_init: native sidecars are init containers")

    # job="..." in rules and dashboard.
    for what, text in (("rules", rules_text), ("dashboard", dashboard_text)):
        for j in set(re.findall(r'job\s*=~?\s*\\?"([^"\\]*)\\?"', text)):
            if j != JOB:
                errors.append(f"{what} select job {j!r}, the scrape jobs set {JOB!r}")

    # Downward API: the app's limits.
    app = dict(get(cfg, "host", "app_container") or {})
    env = {e.get("name"): e for e in rc.get("env") or []}
    if "name" in app:
        # ${VAR:-default} as remora expands it, from remora's plain env values.
        values = {k: str(e["value"]) for k, e in env.items() if "value" in e}
        app["name"] = re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}",
                             lambda m: values.get(m.group(1), m.group(2) or ""), str(app["name"]))
    for var, res in (("APP_MEMORY_LIMIT", "limits.memory"), ("APP_CPU_LIMIT", "limits.cpu")):
        ref = get(env.get(var), "valueFrom", "resourceFieldRef")
        if not ref:
            errors.append(f"env {var} is not a resourceFieldRef")
            continue
        if ref.get("resource") != res:
            errors.append(f"env {var} reads {ref.get('resource')!r}, expected {res}")
        cname = ref.get("containerName")
        if cname == REMORA_CONTAINER or cname not in containers:
            errors.append(f"env {var} reads container {cname!r}, which is not an app container of the pod")
        elif get(containers[cname], "resources", "limits", res.split(".")[1]) is None:
            errors.append(f"container {cname!r} has no {res} (Kubernetes would report the node's capacity)")
        if app and cname != app.get("name"):
            errors.append(f"env {var} reads container {cname!r}, exporter.yaml host.app_container.name is {app.get('name')!r}")
    cpu_ref = get(env.get("APP_CPU_LIMIT"), "valueFrom", "resourceFieldRef") or {}
    mem_ref = get(env.get("APP_MEMORY_LIMIT"), "valueFrom", "resourceFieldRef") or {}
    if str(cpu_ref.get("divisor", "1")) != "1m":
        errors.append(f"APP_CPU_LIMIT divisor {cpu_ref.get('divisor')!r}, expected 1m (millicores)")
    if app and str(app.get("cpu_divisor", "1")) != str(cpu_ref.get("divisor", "1")):
        errors.append(f"exporter.yaml cpu_divisor {app.get('cpu_divisor')!r} differs from APP_CPU_LIMIT's divisor {cpu_ref.get('divisor')!r}")
    if str(mem_ref.get("divisor", "1")) != "1":
        errors.append(f"APP_MEMORY_LIMIT divisor {mem_ref.get('divisor')!r}, expected 1 (bytes)")
    for var in ("POD_NAME", "POD_NAMESPACE", "NODE_NAME"):
        if not get(env.get(var), "valueFrom", "fieldRef", "fieldPath"):
            errors.append(f"env {var} is not a Downward API fieldRef")

    # Every ${VAR} without a default that exporter.yaml uses is set.
    _, cfg_text, _ = exporter_config(docs, rc, spec)
    for var in re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", cfg_text):
        if var not in env:
            errors.append(f"exporter.yaml uses ${{{var}}} without a default; remora's env does not set it")

    # Targets point at an app container's port on localhost.
    app_ports = {p.get("containerPort") for n, c in containers.items() if n != REMORA_CONTAINER for p in c.get("ports") or []}
    for t in cfg.get("targets") or []:
        u = urllib.parse.urlsplit(str(t.get("url", "")))
        if u.hostname not in ("127.0.0.1", "localhost", "::1"):
            errors.append(f"target {t.get('name')}: {u.hostname} is not the pod's loopback")
        if (u.port or (443 if u.scheme == "https" else 80)) not in app_ports:
            errors.append(f"target {t.get('name')}: port {u.port} is not a port of the app containers {sorted(app_ports)}")
    if (get(cfg, "host", "processes") or []) and spec.get("shareProcessNamespace") is not True:
        errors.append("host.processes needs shareProcessNamespace: true")

    # Restricted security context and resources.
    pod_sc = spec.get("securityContext") or {}
    for name, c in containers.items():
        sc = c.get("securityContext") or {}
        if not (sc.get("runAsNonRoot") or pod_sc.get("runAsNonRoot")):
            errors.append(f"container {name}: runAsNonRoot is not true")
        if sc.get("readOnlyRootFilesystem") is not True:
            errors.append(f"container {name}: readOnlyRootFilesystem is not true")
        if sc.get("allowPrivilegeEscalation") is not False:
            errors.append(f"container {name}: allowPrivilegeEscalation is not false")
        if get(sc, "capabilities", "drop") != ["ALL"]:
            errors.append(f"container {name}: capabilities.drop is not [ALL]")
        if get(sc, "seccompProfile", "type", default=get(pod_sc, "seccompProfile", "type")) != "RuntimeDefault":
            errors.append(f"container {name}: seccompProfile is not RuntimeDefault")
        for kind in ("requests", "limits"):
            for r in ("cpu", "memory"):
                if get(c, "resources", kind, r) is None:
                    errors.append(f"container {name}: resources.{kind}.{r} missing")

    # The image agrees.
    m = re.search(r"^EXPOSE\s+(\d+)", dockerfile, re.M)
    if not m or int(m.group(1)) != port:
        errors.append(f"Dockerfile EXPOSE {m.group(1) if m else None} differs from remora's port {port}")
    m = re.search(r"^USER\s+(\d+)", dockerfile, re.M)
    if not m or get(rc, "securityContext", "runAsUser") != int(m.group(1)):
        errors.append(f"runAsUser {get(rc, 'securityContext', 'runAsUser')} differs from the image's USER {m.group(1) if m else None}")
    return errors


def _inputs() -> tuple[dict, str, str, str]:
    return (load_yaml(SCRAPE_FILE), RULES_FILE.read_text(encoding="utf-8"),
            DASHBOARD_FILE.read_text(encoding="utf-8"), DOCKERFILE.read_text(encoding="utf-8"))


def cmd_consistency(build: str, variant: str) -> None:
    docs = load_build(build)
    fail_if(consistency_errors(docs, variant, *_inputs()))
    _, _, rc = the_remora(docs)
    port = port_of(flags(rc["args"])["--web.listen-address"])
    print(f"  {variant}: port {port}, paths, labels, probes, job and limits agree across "
          "Deployment, Service, PodMonitor, scrape job, rules, dashboard, exporter.yaml and Dockerfile")


def _remora_of(docs):
    return the_remora(docs)[2]


def _mutations():
    """(description, function(docs, inputs)) pairs, each a rename the check must catch."""

    def dep(docs):
        return the_remora(docs)[0]

    def cfg_cm(docs):
        return next(d for d in find(docs, "ConfigMap") if "exporter.yaml" in (d.get("data") or {}))

    def set_cfg(docs, fn):
        cm = cfg_cm(docs)
        c = yaml.safe_load(cm["data"]["exporter.yaml"])
        fn(c)
        cm["data"]["exporter.yaml"] = yaml.safe_dump(c)

    def args_port(docs, new):
        rc = _remora_of(docs)
        rc["args"] = [re.sub(r"^(--web.listen-address=.*:)\d+$", rf"\g<1>{new}", a) for a in rc["args"]]

    def ann(docs, k, v):
        dep(docs)["spec"]["template"]["metadata"]["annotations"][k] = v

    def pm_ep(docs):
        return find(docs, "PodMonitor")[0]["spec"]["podMetricsEndpoints"][0]

    def svc_port(docs):
        return next(p for p in find(docs, "Service")[0]["spec"]["ports"] if p["name"] == "metrics")

    def env(docs, name):
        return next(e for e in _remora_of(docs)["env"] if e["name"] == name)

    def rename_port(docs):
        rc = _remora_of(docs)
        rc["ports"][0]["name"] = "http-metrics"

    muts = [
        ("container port renamed", lambda d, i: rename_port(d)),
        ("--web.listen-address port changed", lambda d, i: args_port(d, 9480)),
        ("server.listen port changed", lambda d, i: set_cfg(d, lambda c: c["server"].update(listen="0.0.0.0:9480"))),
        ("server.metrics_path changed", lambda d, i: set_cfg(d, lambda c: c["server"].update(metrics_path="/stats"))),
        ("prometheus.io/port changed", lambda d, i: ann(d, "prometheus.io/port", "9464")),
        ("prometheus.io/path changed", lambda d, i: ann(d, "prometheus.io/path", "/stats")),
        ("prometheus.io/scrape off", lambda d, i: ann(d, "prometheus.io/scrape", "false")),
        ("sidecar pod label removed", lambda d, i: dep(d)["spec"]["template"]["metadata"]["labels"].pop(SIDECAR_LABEL[0])),
        ("PodMonitor port renamed", lambda d, i: pm_ep(d).update(port="http")),
        ("PodMonitor path changed", lambda d, i: pm_ep(d).update(path="/stats")),
        ("PodMonitor job renamed", lambda d, i: pm_ep(d)["relabelings"][0].update(replacement="remora-sidecar")),
        ("PodMonitor selector changed", lambda d, i: find(d, "PodMonitor")[0]["spec"]["selector"].update(matchLabels={"app": "other"})),
        ("Service targetPort changed", lambda d, i: svc_port(d).update(targetPort=9464)),
        ("liveness path changed", lambda d, i: _remora_of(d)["livenessProbe"]["httpGet"].update(path="/healthz")),
        ("readiness port changed", lambda d, i: _remora_of(d)["readinessProbe"]["httpGet"].update(port=8080)),
        ("config mounted with subPath", lambda d, i: _remora_of(d)["volumeMounts"][0].update(subPath="exporter.yaml")),
        ("config ConfigMap renamed", lambda d, i: cfg_cm(d)["metadata"].update(name="remora-cfg")),
        ("--config.file moved", lambda d, i: _remora_of(d).update(args=[
            a.replace("/etc/remora/", "/config/") for a in _remora_of(d)["args"]])),
        ("app container renamed in APP_CPU_LIMIT", lambda d, i: env(d, "APP_CPU_LIMIT")["valueFrom"]["resourceFieldRef"].update(containerName="application")),
        ("cpu divisor changed", lambda d, i: env(d, "APP_CPU_LIMIT")["valueFrom"]["resourceFieldRef"].update(divisor="1")),
        ("app_container.name changed", lambda d, i: set_cfg(d, lambda c: c["host"]["app_container"].update(name="web"))),
        ("target port changed", lambda d, i: set_cfg(d, lambda c: c["targets"][0].update(url="http://127.0.0.1:8000/health"))),
        ("shareProcessNamespace off", lambda d, i: dep(d)["spec"]["template"]["spec"].update(shareProcessNamespace=False)),
        ("scrape job renamed", lambda d, i: i[0]["scrape_configs"][0].update(job_name="kubernetes-pods")),
        ("scrape job keeps another label", lambda d, i: i[0]["scrape_configs"][0]["relabel_configs"][0].update(
            source_labels=["__meta_kubernetes_pod_label_remora"])),
        ("rules select another job", lambda d, i: i.__setitem__(1, i[1].replace('job="remora"', 'job="remora-exporter"'))),
        ("Dockerfile exposes another port", lambda d, i: i.__setitem__(3, re.sub(r"(?m)^EXPOSE \d+", "EXPOSE 9464", i[3]))),
        ("readOnlyRootFilesystem off", lambda d, i: _remora_of(d)["securityContext"].update(readOnlyRootFilesystem=False)),
    ]
    return muts


def cmd_consistency_selftest(build: str) -> None:
    docs = load_build(build)
    inputs = list(_inputs())
    base = consistency_errors(docs, "native", *inputs)
    if base:
        raise CheckError("  - the unmodified build already fails the consistency check")
    missed, caught = [], []
    for what, fn in _mutations():
        d, i = copy.deepcopy(docs), copy.deepcopy(inputs)
        fn(d, i)
        errs = consistency_errors(d, "native", *i)
        if errs:
            caught.append(f"  caught {what}: {errs[0]}")
        else:
            missed.append(what)
    if missed:
        raise CheckError("\n".join(f"  - not caught: {m}" for m in missed))
    print(f"  all {len(caught)} renames caught, e.g.")
    print("\n".join(caught))


def cmd_variants(native: str, legacy: str) -> None:
    n, l_ = load_build(native), load_build(legacy)
    errors = []
    _, nw, nrc = the_remora(n)
    _, lw, lrc = the_remora(l_)
    nrc = {k: v for k, v in nrc.items() if k != "restartPolicy"}
    if nrc != lrc:
        errors.append("the remora container differs between the variants (beyond restartPolicy)")
    nd, ld = copy.deepcopy(the_remora(n)[0]), copy.deepcopy(the_remora(l_)[0])
    for d in (nd, ld):
        s = pod_spec(d)
        s["containers"] = [c for c in s.get("containers") or [] if c.get("name") != REMORA_CONTAINER]
        s["initContainers"] = [c for c in s.get("initContainers") or [] if c.get("name") != REMORA_CONTAINER]
        if not s["initContainers"]:
            del s["initContainers"]
    if nd != ld:
        errors.append("the Deployments differ beyond where remora sits")
    others = lambda docs: sorted((json.dumps(d, sort_keys=True) for d in docs if d.get("kind") != "Deployment"))
    if others(n) != others(l_):
        errors.append("objects other than the Deployment differ between the variants")
    fail_if(errors)
    print(f"  native: remora in {nw}; legacy: remora in {lw}; everything else identical")


REQUIRED_DASHBOARD_METRICS = [
    "remora_target_up", "remora_target_poll_duration_seconds", "app_dependency_health",
    "app_dependency_latency_seconds", "process_cpu_time_seconds_total", "k8s_container_cpu_limit",
    "process_memory_usage_bytes", "k8s_container_memory_limit_bytes", "process_resident_memory_bytes",
    "process_cpu_seconds_total",
]


def cmd_dashboard(build: str) -> None:
    errors = []
    text = DASHBOARD_FILE.read_text(encoding="utf-8")
    try:
        dash = json.loads(text)
    except json.JSONDecodeError as e:
        raise CheckError(f"  - {DASHBOARD_FILE}: invalid JSON: {e}")
    for key in ("uid", "title", "schemaVersion", "panels", "templating"):
        if key not in dash:
            errors.append(f"dashboard has no {key}")
    if dash.get("id") is not None:
        errors.append("dashboard id must be null for provisioning")
    variables = {v.get("name"): v for v in get(dash, "templating", "list", default=[]) or []}
    if "datasource" not in variables or variables["datasource"].get("type") != "datasource":
        errors.append("no datasource variable")
    tv = variables.get("target")
    if not tv or tv.get("type") != "query" or "target" not in json.dumps(tv.get("query")):
        errors.append("no query variable `target` over label_values(..., target)")
    ids = [p.get("id") for p in dashboard_panels(dash)]
    if len(ids) != len(set(ids)):
        errors.append("panel ids are not unique")
    all_exprs = ""
    for p in dashboard_panels(dash):
        if p.get("type") == "row":
            continue
        ds = get(p, "datasource", "uid")
        if ds != "${datasource}":
            errors.append(f"panel {p.get('title')!r} does not use the ${{datasource}} variable")
        targets = p.get("targets") or []
        if not targets or not all(t.get("expr") for t in targets):
            errors.append(f"panel {p.get('title')!r} has a query without expr")
        for t in targets:
            expr = t.get("expr", "")
            all_exprs += expr + "\n"
            if "remora_target_" in expr and "$target" not in expr:
                errors.append(f"panel {p.get('title')!r}: {expr!r} ignores $target")
            if get(t, "datasource", "uid", default="${datasource}") != "${datasource}":
                errors.append(f"panel {p.get('title')!r}: a query does not use ${{datasource}}")
    for m in REQUIRED_DASHBOARD_METRICS:
        if m not in all_exprs:
            errors.append(f"no panel shows {m}")
    # The ConfigMap Grafana's sidecar loads: generated from the same file.
    cms = [d for d in find(load_build(build), "ConfigMap")
           if get(d, "metadata", "labels", "grafana_dashboard") == "1"]
    if len(cms) != 1:
        errors.append(f"expected one ConfigMap labelled grafana_dashboard: \"1\", found {len(cms)}")
    else:
        data = cms[0].get("data") or {}
        if data.get(DASHBOARD_FILE.name) != text:
            errors.append(f"the dashboard ConfigMap's {DASHBOARD_FILE.name} differs from {DASHBOARD_FILE}")
    fail_if(errors)
    print(f"  {len(ids)} panels, variables {', '.join(variables)}; ConfigMap {get(cms[0], 'metadata', 'name')} carries the same JSON")


def cmd_dockerfile() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    lines = [l.strip() for l in re.sub(r"\\\n", " ", text).splitlines() if l.strip() and not l.strip().startswith("#")]
    froms = [l for l in lines if l.upper().startswith("FROM ")]
    errors = []
    if len(froms) < 2:
        errors.append("not a multi-stage build")
    else:
        if not re.match(r"FROM\s+(--platform=\S+\s+)?rust:1(\.\d+){0,2}-bookworm\s+AS\s+\w+", froms[0], re.I):
            errors.append(f"builder stage is {froms[0]!r}, expected rust:1-bookworm or a pinned rust:1.N-bookworm")
        if "gcr.io/distroless/cc-debian12" not in froms[-1] and "scratch" not in froms[-1]:
            errors.append(f"final stage is {froms[-1]!r}, expected a distroless or scratch base")
    if not re.search(r"cargo build\b[^\n]*--release[^\n]*--locked|cargo build\b[^\n]*--locked[^\n]*--release", " ".join(lines)):
        errors.append("no `cargo build --release --locked`")
    final = text[text.rfind("\nFROM "):] if "\nFROM " in text else text
    m = re.search(r"^USER\s+(\S+)", final, re.M)
    if not m or not re.fullmatch(r"[1-9]\d*(:\d+)?", m.group(1)):
        errors.append("the final stage has no numeric non-root USER (runAsNonRoot needs a numeric UID)")
    m = re.search(r'^ENTRYPOINT\s+(\[.*\])', final, re.M)
    if not m or not json.loads(m.group(1))[0].endswith("/remora"):
        errors.append("ENTRYPOINT is not the remora binary (exec form)")
    if "--config.file=/etc/remora/exporter.yaml" not in final:
        errors.append("the image's default command does not read /etc/remora/exporter.yaml")
    if re.search(r"^(RUN|COPY|ADD)\b.*apt-get", final, re.M):
        errors.append("the final stage installs packages")
    fail_if(errors)
    print("  multi-stage " + froms[0].split()[-3] + " -> " + froms[-1].split()[1] + ", --locked release build, numeric non-root USER, remora entrypoint")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_json(url: str, timeout: float = 5.0):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, json.loads(r.read().decode())
    except urllib.error.HTTPError as e:
        body = e.read().decode(errors="replace")
        try:
            return e.code, json.loads(body)
        except json.JSONDecodeError:
            return e.code, {"error": body}


class PrometheusServer:
    """A real Prometheus on 127.0.0.1 at a free port, with a temporary storage dir."""

    def __init__(self, binary: str, config: dict):
        self.binary = binary
        self.config = config

    def __enter__(self) -> "PrometheusServer":
        self.work = tempfile.mkdtemp(prefix="remora-prom-")
        cfg = os.path.join(self.work, "prometheus.yml")
        for i, f in enumerate(self.config.get("rule_files") or []):
            copy_to = os.path.join(self.work, f"rules{i}.yml")
            shutil.copy(f, copy_to)
            self.config["rule_files"][i] = copy_to
        with open(cfg, "w", encoding="utf-8") as f:
            yaml.safe_dump(self.config, f, sort_keys=False)
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = open(os.path.join(self.work, "prometheus.log"), "w+", encoding="utf-8")
        self.proc = subprocess.Popen(
            [self.binary, f"--config.file={cfg}", f"--storage.tsdb.path={os.path.join(self.work, 'data')}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
            stdout=self.log, stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 60
            while True:
                if self.proc.poll() is not None:
                    self.log.seek(0)
                    raise CheckError(f"  - prometheus exited with {self.proc.returncode}:\n{self.log.read()[-2000:]}")
                try:
                    with urllib.request.urlopen(self.base + "/-/ready", timeout=2) as r:
                        if r.status == 200:
                            break
                except (urllib.error.URLError, ConnectionError, OSError):
                    pass
                if time.monotonic() > deadline:
                    raise CheckError("  - prometheus did not become ready within 60 s")
                time.sleep(0.3)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        print(f"  prometheus {self.binary} serving on 127.0.0.1:{self.port}")
        return self

    def get(self, path: str, **params):
        q = ("?" + urllib.parse.urlencode(params)) if params else ""
        return http_json(f"{self.base}{path}{q}")

    def __exit__(self, *exc) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        shutil.rmtree(self.work, ignore_errors=True)


def cmd_queries(build: str, prometheus: str) -> None:
    dash = json.loads(DASHBOARD_FILE.read_text(encoding="utf-8"))
    exprs = [(f"rule {r.get('alert') or r.get('record')}", r["expr"]) for r in all_rules()]
    exprs += [(w, substitute_grafana(e)) for w, e in dashboard_exprs(dash)]
    errors = []
    config = {"global": {"evaluation_interval": "1s"}, "rule_files": [str(RULES_FILE)]}
    with PrometheusServer(prometheus, config) as prom:
        for where, expr in exprs:
            status, body = prom.get("/api/v1/query", query=expr)
            if status != 200 or body.get("status") != "success":
                errors.append(f"{where}: {body.get('error', status)}\n      {expr}")
        # The rule file loaded into the real server evaluates without errors.
        deadline = time.monotonic() + 20
        while True:
            _, body = prom.get("/api/v1/rules")
            rules = [r for g in get(body, "data", "groups", default=[]) for r in g.get("rules", [])]
            if rules and not [r for r in rules if r.get("health") == "unknown"]:
                break
            if time.monotonic() > deadline:
                errors.append("rules were not evaluated within 20 s")
                break
            time.sleep(0.5)
        if len(rules) != len(all_rules()):
            errors.append(f"prometheus loaded {len(rules)} rules, the file has {len(all_rules())}")
        for r in rules:
            if r.get("health") != "ok":
                errors.append(f"rule {r.get('name')}: health {r.get('health')}: {r.get('lastError')}")
    fail_if(errors)
    print(f"  {len(exprs)} expressions accepted by /api/v1/query; {len(rules)} rules evaluated with health ok")


def sd_pod_targets(deploy: dict, name: str, phase: str = "Running", labels: dict | None = None) -> list[dict]:
    """What Kubernetes pod discovery yields for a pod of this Deployment: one target
    per container port, as static_configs entries (address on loopback)."""
    meta = get(deploy, "spec", "template", "metadata", default={}) or {}
    common = {
        "__meta_kubernetes_namespace": "shop",
        "__meta_kubernetes_pod_name": name,
        "__meta_kubernetes_pod_phase": phase,
        "__meta_kubernetes_pod_ip": "127.0.0.1",
    }
    for k, v in (meta.get("labels") if labels is None else labels).items():
        common[f"__meta_kubernetes_pod_label_{sd_name(k)}"] = v
    for k, v in (meta.get("annotations") or {}).items():
        common[f"__meta_kubernetes_pod_annotation_{sd_name(k)}"] = v
    out = []
    for where, c in all_containers(pod_spec(deploy)):
        for p in c.get("ports") or []:
            out.append({"targets": [f"127.0.0.1:{p['containerPort']}"], "labels": dict(
                common,
                __meta_kubernetes_pod_container_name=c["name"],
                __meta_kubernetes_pod_container_init=str(where == "initContainers").lower(),
                __meta_kubernetes_pod_container_port_name=p.get("name", ""),
                __meta_kubernetes_pod_container_port_number=str(p["containerPort"]),
                __meta_kubernetes_pod_container_port_protocol=p.get("protocol", "TCP"),
            )})
    return out


def cmd_scrape_job(build: str, prometheus: str, promtool: str) -> None:
    """The plain scrape job's relabeling, run by a real Prometheus on pod-discovery
    fixtures made from the Deployment (Debian's Prometheus is built without Kubernetes
    discovery, so kubernetes_sd_configs is swapped for the same targets as static_configs)."""
    docs = load_build(build)
    deploy, _, rc = the_remora(docs)
    port = port_of(flags(rc["args"])["--web.listen-address"])
    jobs = copy.deepcopy(load_yaml(SCRAPE_FILE)["scrape_configs"])
    errors = []
    if len(jobs) != 1:
        raise CheckError(f"  - expected one job in {SCRAPE_FILE}")
    job = jobs[0]
    sd = job.pop("kubernetes_sd_configs", None)
    if sd != [{"role": "pod"}]:
        errors.append(f"kubernetes_sd_configs is {sd!r}, expected [{{role: pod}}]")
    pod_labels = get(deploy, "spec", "template", "metadata", "labels", default={})
    other_labels = {k: v for k, v in pod_labels.items() if k != SIDECAR_LABEL[0]}
    job["static_configs"] = (
        sd_pod_targets(deploy, "checkout-0")
        + sd_pod_targets(deploy, "checkout-1", phase="Pending")
        + sd_pod_targets(deploy, "batch-0", labels=other_labels)
    )
    job["scrape_interval"] = "1h"  # the fixtures are never really scraped
    job["scrape_timeout"] = "1s"
    config = {"global": {"scrape_interval": "1h"}, "scrape_configs": [job]}
    check_file = os.path.join(tempfile.mkdtemp(prefix="remora-scrape-"), "prometheus.yml")
    with open(check_file, "w", encoding="utf-8") as f:
        yaml.safe_dump(config, f, sort_keys=False)
    r = subprocess.run([promtool, "check", "config", check_file], capture_output=True, text=True)
    shutil.rmtree(os.path.dirname(check_file), ignore_errors=True)
    if r.returncode != 0:
        raise CheckError(f"  - promtool check config: {(r.stdout + r.stderr).strip()}")
    print("  promtool check config: SUCCESS (with static pod fixtures in place of kubernetes_sd_configs)")
    with PrometheusServer(prometheus, config) as prom:
        deadline = time.monotonic() + 20
        while True:
            _, body = prom.get("/api/v1/targets", state="any")
            active = get(body, "data", "activeTargets", default=[]) or []
            dropped = get(body, "data", "droppedTargets", default=[]) or []
            if active or dropped or time.monotonic() > deadline:
                break
            time.sleep(0.5)
    total = len(job["static_configs"])
    if len(active) != 1:
        errors.append(f"expected exactly one active target (remora of the running pod), got {len(active)}: "
                      + ", ".join(t.get("scrapeUrl", "?") for t in active))
    else:
        t = active[0]
        want = {"job": JOB, "namespace": "shop", "pod": "checkout-0", "container": REMORA_CONTAINER,
                "instance": f"127.0.0.1:{port}"}
        got = t.get("labels") or {}
        for k, v in want.items():
            if got.get(k) != v:
                errors.append(f"target label {k}={got.get(k)!r}, expected {v!r}")
        metrics_path = get(deploy, "spec", "template", "metadata", "annotations", "prometheus.io/path")
        if t.get("scrapeUrl") != f"http://127.0.0.1:{port}{metrics_path}":
            errors.append(f"scrapeUrl {t.get('scrapeUrl')}, expected http://127.0.0.1:{port}{metrics_path}")
        print(f"  the running pod gives one target: {t.get('scrapeUrl')} {json.dumps(got, sort_keys=True)}")
    if len(dropped) != total - 1:
        errors.append(f"{len(dropped)} of {total} discovered targets dropped, expected {total - 1}")
    elif len(active) == 1:
        print(f"  dropped {len(dropped)} of {total} discovered: the app's port, the Pending pod, the pod without the sidecar label")
    fail_if(errors)


def downward_env(docs: list[dict]) -> dict[str, str]:
    """The environment Kubernetes would give the remora container (with a made-up pod)."""
    deploy, _, rc = the_remora(docs)
    spec = pod_spec(deploy)
    containers = {c.get("name"): c for _, c in all_containers(spec)}
    fields = {
        "metadata.name": f"{get(deploy, 'metadata', 'name')}-5d8f7c9b4-x2x7k",
        "metadata.namespace": "default",
        "spec.nodeName": "node-1",
        "status.podIP": "10.0.0.7",
        "status.hostIP": "192.0.2.10",
        "spec.serviceAccountName": "default",
    }
    env = {}
    for e in rc.get("env") or []:
        if "value" in e:
            env[e["name"]] = str(e["value"])
        elif get(e, "valueFrom", "fieldRef"):
            env[e["name"]] = fields.get(get(e, "valueFrom", "fieldRef", "fieldPath"), "x")
        elif get(e, "valueFrom", "resourceFieldRef"):
            ref = get(e, "valueFrom", "resourceFieldRef")
            target = containers.get(ref.get("containerName", REMORA_CONTAINER), {})
            kind, _, res = ref["resource"].partition(".")
            value = quantity(get(target, "resources", kind, res))
            env[e["name"]] = str(math.ceil(value / quantity(ref.get("divisor", "1")) - 1e-9))
    return env


def cmd_remora_check(build: str, command: list[str]) -> None:
    docs = load_build(build)
    _, _, rc = the_remora(docs)
    cfg, text, errors = exporter_config(docs, rc, pod_spec(the_remora(docs)[0]))
    fail_if(errors)
    work = tempfile.mkdtemp(prefix="remora-cfg-")
    try:
        path = os.path.join(work, "exporter.yaml")
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        env = dict(os.environ)
        kube_env = downward_env(docs)
        env.update(kube_env)
        print("  env: " + " ".join(f"{k}={v}" for k, v in sorted(kube_env.items())))
        argv = command + ["check", f"--config.file={path}"]
        print("  $ " + " ".join(argv))
        try:
            r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=900)
        except FileNotFoundError as e:
            raise CheckError(f"  - cannot run {command[0]}: {e}")
        out = (r.stdout + r.stderr).strip()
        for line in out.splitlines()[-40:]:
            print(f"  | {line}")
        if r.returncode != 0:
            raise CheckError(f"  - remora check exited with {r.returncode}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


COMPONENT_DIR = Path("k8s/components/remora-sidecar")
OWN_DIR = Path("k8s/examples/own-deployment")


def component_errors(docs: list[dict], source: dict) -> list[str]:
    """The sidecar added to the Deployment of `source` (its manifest), the rest kept."""
    errors = []
    deploy, where, rc = the_remora(docs)
    name = get(source, "metadata", "name")
    if get(deploy, "metadata", "name") != name:
        errors.append(f"the Deployment is {get(deploy, 'metadata', 'name')!r}, expected the user's {name!r}")
    if where != "initContainers" or rc.get("restartPolicy") != "Always":
        errors.append("remora is not a native sidecar (init container, restartPolicy: Always)")
    spec, src_spec = pod_spec(deploy), pod_spec(source)
    if spec.get("containers") != src_spec.get("containers"):
        errors.append("the user's containers were changed")
    app = (src_spec.get("containers") or [{}])[0].get("name")
    env = {e.get("name"): e for e in rc.get("env") or []}
    if get(env.get("APP_CONTAINER_NAME"), "value") != app:
        errors.append(f"APP_CONTAINER_NAME is {get(env.get('APP_CONTAINER_NAME'), 'value')!r}, the app container is {app!r}")
    for var in ("APP_MEMORY_LIMIT", "APP_CPU_LIMIT"):
        ref = get(env.get(var), "valueFrom", "resourceFieldRef", "containerName")
        if ref != app:
            errors.append(f"{var} reads container {ref!r}, the app container is {app!r}")
    if spec.get("shareProcessNamespace") is not True:
        errors.append("shareProcessNamespace is not true")
    labels = get(deploy, "spec", "template", "metadata", "labels", default={}) or {}
    for k, v in (get(source, "spec", "template", "metadata", "labels", default={}) or {}).items():
        if labels.get(k) != v:
            errors.append(f"the pod label {k} was changed")
    if get(deploy, "spec", "selector") != get(source, "spec", "selector"):
        errors.append("the Deployment's selector was changed")
    return errors


def cmd_component(build: str, kubectl: str) -> None:
    docs = load_build(build)
    source = load_yaml(OWN_DIR / "deployment.yaml")
    errors = component_errors(docs, source)
    # Named in one place: the Deployment's name is in its own manifest only.
    name = get(source, "metadata", "name")
    for f in sorted(COMPONENT_DIR.iterdir()) + [OWN_DIR / "kustomization.yaml"]:
        if re.search(rf"\b{re.escape(name)}\b", f.read_text(encoding="utf-8")):
            errors.append(f"{f} names the Deployment {name!r}")
    # Another app (other Deployment and container names, two containers): the
    # component follows it.
    work = Path(tempfile.mkdtemp(prefix="remora-component-"))
    try:
        other = copy.deepcopy(source)
        other["metadata"]["name"] = "billing"
        c = other["spec"]["template"]["spec"]["containers"]
        c[0]["name"] = "server"
        c.append({"name": "proxy", "image": "envoyproxy/envoy:v1.31.0"})
        (work / "deployment.yaml").write_text(yaml.safe_dump(other), encoding="utf-8")
        shutil.copy(OWN_DIR / "exporter.yaml", work / "exporter.yaml")
        (work / "kustomization.yaml").write_text(yaml.safe_dump({
            "apiVersion": "kustomize.config.k8s.io/v1beta1",
            "kind": "Kustomization",
            "resources": ["deployment.yaml"],
            "components": [os.path.relpath(COMPONENT_DIR.resolve(), work)],
            "configMapGenerator": [{"name": "remora-config", "files": ["exporter.yaml"]}],
        }), encoding="utf-8")
        r = subprocess.run([kubectl, "kustomize", str(work)], capture_output=True, text=True, timeout=300)
        if r.returncode != 0:
            errors.append(f"kustomize build of another Deployment failed: {r.stderr.strip()}")
        else:
            other_docs = [d for d in yaml.safe_load_all(r.stdout) if d]
            errors += [f"another Deployment: {e}" for e in component_errors(other_docs, other)]
            # The generated ConfigMap's name (with its hash suffix) reaches the volume.
            cm = [get(d, "metadata", "name") for d in other_docs if d.get("kind") == "ConfigMap"]
            vols = [get(v, "configMap", "name") for v in pod_spec(the_remora(other_docs)[0]).get("volumes") or []]
            if not cm or cm[0] not in vols:
                errors.append(f"another Deployment: the volume names {vols}, the ConfigMap is {cm}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    fail_if(errors)
    print(f"  sidecar added to Deployment {name!r} (app container {pod_spec(source)['containers'][0]['name']!r}) "
          "and to another with other names; the Deployment is named in its own manifest only")


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__)
        return 2
    cmd, args = argv[0], argv[1:]
    try:
        if cmd == "split":
            cmd_split(*args)
        elif cmd == "crds":
            cmd_crds(*args)
        elif cmd == "sync-rules":
            cmd_sync_rules("--check" in args)
        elif cmd == "rule-meta":
            cmd_rule_meta()
        elif cmd == "metric-names":
            cmd_metric_names()
        elif cmd == "alert-coverage":
            cmd_alert_coverage()
        elif cmd == "readme-anchors":
            return cmd_readme_anchors()
        elif cmd == "consistency":
            cmd_consistency(*args)
        elif cmd == "consistency-selftest":
            cmd_consistency_selftest(*args)
        elif cmd == "variants":
            cmd_variants(*args)
        elif cmd == "dashboard":
            cmd_dashboard(*args)
        elif cmd == "dockerfile":
            cmd_dockerfile()
        elif cmd == "queries":
            cmd_queries(*args)
        elif cmd == "scrape-job":
            cmd_scrape_job(*args)
        elif cmd == "component":
            cmd_component(*args)
        elif cmd == "remora-check":
            cmd_remora_check(args[0], args[1:])
        else:
            print(f"unknown subcommand {cmd!r}\n{__doc__}")
            return 2
    except CheckError as e:
        print(str(e))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
