#!/usr/bin/env bash
# `remora init` on real products' documented health bodies, end to end with
# the real binary and a real HTTP server (issue 26's table).
#
#   scripts/init-apps.sh [PRODUCT...]      (default: every product below)
#
# For each product of tests/fixtures/apps/ and each of its healthy and
# failing bodies (the "from" form): a local HTTP server answers the
# product's endpoint with that body, the HTTP status the product documents
# for it and its content type; `remora init URL` writes a config;
# `remora check` loads it; then for the healthy and the failing body (the
# "to" form, served the same way) `remora once --explain` polls it. Printed
# per (product, from, to): the series the target made, its extraction
# errors (FAILED lines of --explain), whether the failure of the failing body
# is visible (a `state="X"` series at 1, or a value), the exit codes.
# Ends with a summary row per product: series on healthy / failing with the
# config written from the healthy body, errors over every run.
#
# Environment: REMORA_BIN (target/debug/remora, built if missing), PORT (a
# free one), KEEP=1 keeps the work directory (configs, outputs).
set -euo pipefail
cd "$(dirname "$0")/.."
REMORA_BIN=${REMORA_BIN:-target/debug/remora}
if [ ! -x "$REMORA_BIN" ]; then
  cargo build --quiet --bin remora
  REMORA_BIN=target/debug/remora
fi
export REMORA_BIN
exec python3 - "$@" <<'PY'
import http.server, json, os, re, shutil, socket, subprocess, sys, tempfile, threading

BIN = os.path.abspath(os.environ["REMORA_BIN"])
APPS_DIR = os.path.abspath("tests/fixtures/apps")
JSON = "application/json"

# product dir, endpoint path, content type, (form, HTTP status) with the
# healthy form first and the failing form second, failure signal:
# ("state", X) a series with state="X" at 1; ("value", SUFFIX, V) a series
# of a family ending in SUFFIX at V; None: no failing form exists.
APPS = [
    ("vault", "/v1/sys/health", JSON, [("healthy", 200), ("failing", 503)], ("value", "sealed", 1.0)),
    ("elasticsearch", "/_cluster/health", JSON, [("healthy", 200), ("failing", 200)], ("state", "red")),
    ("opensearch", "/_cluster/health", JSON, [("healthy", 200), ("failing", 200)], ("state", "red")),
    ("spring-boot-actuator", "/actuator/health", "application/vnd.spring-boot.actuator.v3+json",
     [("healthy", 200), ("failing", 503)], ("state", "DOWN")),
    ("microprofile-health", "/q/health/ready", JSON, [("healthy", 200), ("failing", 503)], ("state", "DOWN")),
    ("keycloak", "/health/ready", JSON, [("healthy", 200), ("failing", 503)], ("state", "DOWN")),
    ("nestjs-terminus", "/health", "application/json; charset=utf-8",
     [("healthy", 200), ("failing", 503)], ("state", "down")),
    ("consul-health-checks", "/v1/health/checks/payments", JSON, [("healthy", 200), ("failing", 200)], ("state", "critical")),
    ("consul-agent-checks", "/v1/agent/checks", JSON, [("healthy", 200), ("failing", 200)], ("state", "critical")),
    ("consul-agent-health-service", "/v1/agent/health/service/id/web-1", JSON,
     [("healthy", 200), ("failing", 503)], ("state", "critical")),
    ("etcd", "/health", JSON, [("healthy", 200), ("failing", 503)], ("value", "health", 0.0)),
    ("rabbitmq-health-alarms", "/api/health/checks/alarms", JSON, [("healthy", 200), ("failing", 503)], ("state", "failed")),
    ("rabbitmq-overview", "/api/overview", JSON, [("healthy", 200), ("failing", 200)], ("value", "object_totals_consumers", 0.0)),
    ("envoy", "/server_info", JSON, [("healthy", 200), ("failing", 200)], ("state", "DRAINING")),
    ("go-expvar", "/debug/vars", "application/json; charset=utf-8", [("healthy", 200), ("with-app-vars", 200)], None),
    ("ietf-health-json", "/health", "application/health+json", [("healthy", 200), ("failing", 503)], ("state", "fail")),
    ("grafana", "/api/health", "application/json; charset=UTF-8", [("healthy", 200), ("failing", 503)], ("state", "failing")),
    ("kafka-connect", "/connectors/orders-jdbc-sink/status", JSON, [("healthy", 200), ("failing", 200)], ("state", "FAILED")),
    ("fastapi/health", "/health", JSON, [("healthy", 200), ("failing", 503)], ("state", "unhealthy")),
    ("fastapi/ready", "/health/ready", JSON, [("healthy", 200), ("failing", 503)], ("value", "app_ready", 0.0)),
    ("fastapi/live", "/health/live", JSON, [("healthy", 200)], None),
]

current = {"body": b"{}", "status": 200, "type": JSON}

class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(current["status"])
        self.send_header("Content-Type", current["type"])
        self.send_header("Content-Length", str(len(current["body"])))
        self.end_headers()
        self.wfile.write(current["body"])
    def log_message(self, *a):
        pass

srv = http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ.get("PORT", "0"))), Handler)
port = srv.server_address[1]
threading.Thread(target=srv.serve_forever, daemon=True).start()

def fixture(app, form):
    d = app[0]
    # fastapi/<page>: tests/fixtures/apps/fastapi/<page>-<form>.json
    if "/" in d:
        top, page = d.split("/", 1)
        return os.path.join(APPS_DIR, top, f"{page}-{form}.json")
    return os.path.join(APPS_DIR, d, f"{form}.json")

def serve(app, form, status):
    with open(fixture(app, form), "rb") as f:
        current.update(body=f.read(), status=status, type=app[2])

def run(args):
    p = subprocess.run([BIN] + args, capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout, p.stderr

def visible(signal, out):
    if signal is None:
        return None
    for line in out.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name, _, value = line.rpartition(" ")
        try:
            v = float(value)
        except ValueError:
            continue
        if signal[0] == "state" and f'state="{signal[1]}"' in name and v == 1.0:
            return True
        if signal[0] == "value":
            fam = name.split("{", 1)[0]
            if fam.endswith(signal[1]) and v == signal[2]:
                return True
    return False

wanted = set(sys.argv[1:])
work = tempfile.mkdtemp(prefix="init-apps-")
rows, summary, bad = [], [], 0
for app in APPS:
    if wanted and app[0] not in wanted and app[0].split("/")[0] not in wanted:
        continue
    d, path, ctype, forms, signal = app
    url = f"http://127.0.0.1:{port}{path}"
    per = {}
    for frm, st in forms[:2]:
        serve(app, frm, st)
        cfg = os.path.join(work, f"{d.replace('/', '-')}-from-{frm}.yaml")
        rc, out, err = run(["init", url, "--output", cfg])
        if rc != 0:
            rows.append((d, frm, "-", "init failed: " + ((err + out).strip().splitlines() or ["(no output)"])[-1], "", ""))
            bad += 1
            continue
        rc, out, err = run(["check", "--config.file", cfg])
        if rc != 0:
            rows.append((d, frm, "-", "check failed: " + (err or out).strip()[:300], "", ""))
            bad += 1
            continue
        for to, st2 in forms[:2]:
            serve(app, to, st2)
            rc, out, err = run(["once", "--explain", "--config.file", cfg])
            m = re.search(r"^target \S+ \(.*\): up, HTTP (\d+), \d+ bytes in [\d.]+ s, (\d+) series", err, re.M)
            series = int(m.group(2)) if m else None
            failed = [l.strip() for l in err.splitlines() if l.strip().startswith("FAILED")]
            vis = visible(signal, out) if signal and len(forms) > 1 and to == forms[1][0] else None
            if series is None or failed or vis is False:
                bad += 1
            per[(frm, to)] = (series, len(failed))
            rows.append((d, frm, to, "down" if series is None else series,
                         len(failed) if not failed else f"{len(failed)}: {failed[0]}",
                         "" if vis is None else ("yes" if vis else "NO")))
    h = per.get(("healthy", "healthy"), (None, 0))[0]
    f = per.get(("healthy", forms[1][0]), (None, 0))[0] if len(forms) > 1 else None
    errs = sum(e for _, e in per.values())
    summary.append((d, h, f, errs))

print(f"| product | config from | body | series | errors | failure visible |")
print(f"|---|---|---|---|---|---|")
for r in rows:
    print("| " + " | ".join(str(x) for x in r) + " |")
print()
print("| product | series healthy / failing (config from healthy) | errors (every run) |")
print("|---|---|---|")
for d, h, f, e in summary:
    print(f"| {d} | {h} / {'-' if f is None else f} | {e} |")
srv.shutdown()
if os.environ.get("KEEP") == "1":
    print(f"\nwork directory: {work}", file=sys.stderr)
else:
    shutil.rmtree(work, ignore_errors=True)
sys.exit(1 if bad else 0)
PY
