//! The HTTP statuses whose body a generated target reads (`accept_status`):
//! the statuses the probed endpoint is documented to answer with a health
//! body (a secret store's standby and sealed answers, a readiness page's
//! 503, a service agent's 429 for "warning", a search cluster's 408 on a
//! health wait that timed out), and always the status seen while probing.

use serde_json::Value;

use super::probe::Answer;

/// `accept_status` of a target and the comment line that says why.
#[derive(Debug, Clone, PartialEq)]
pub struct Accept {
    pub codes: Vec<u16>,
    pub why: String,
}

/// Vault's `/v1/sys/health`: 429 standby, 472 DR secondary, 473 performance
/// standby, 474 standby without the active node, 501 not initialized, 503
/// sealed, 530 removed from the cluster.
const VAULT: [u16; 7] = [429, 472, 473, 474, 501, 503, 530];

/// Whether `doc` looks like Vault's `sys/health` body.
fn vault(doc: &Value) -> bool {
    ["initialized", "sealed", "standby"]
        .iter()
        .all(|k| doc.get(k).is_some_and(Value::is_boolean))
}

/// Whether `doc` looks like Consul's `/v1/agent/health/service/...` body.
fn consul_service(doc: &Value) -> bool {
    let first = match doc {
        Value::Array(items) => items.first(),
        other => Some(other),
    };
    first.is_some_and(|d| d.get("AggregatedStatus").is_some())
}

/// Whether `doc` looks like Elasticsearch's or OpenSearch's cluster health.
fn cluster_health(doc: &Value) -> bool {
    ["cluster_name", "status", "number_of_nodes", "timed_out"]
        .iter()
        .all(|k| doc.get(k).is_some())
}

/// Whether the URL's path names a health, readiness or status page.
fn health_path(path: &str) -> bool {
    let p = path.to_ascii_lowercase();
    ["health", "ready", "live", "status", "alarms"]
        .iter()
        .any(|w| p.contains(w))
}

/// The statuses to read for an answer `a` whose body is `doc`; None for
/// the default (2xx).
pub fn accept(a: &Answer, doc: &Value) -> Option<Accept> {
    let (extra, why): (&[u16], &str) = if vault(doc) {
        (
            &VAULT,
            "Vault's sys/health answers 429 (standby), 472 (DR secondary), 473 (performance standby), 474, 501 (not initialized), 503 (sealed) and 530 with its body: read them all.",
        )
    } else if consul_service(doc) {
        (
            &[429, 503],
            "Consul's agent service health answers 429 (warning) and 503 (critical) with its body: read them.",
        )
    } else if cluster_health(doc) {
        (
            &[408],
            "Cluster health answers 408 with a full body when a wait_for_* parameter times out: read it.",
        )
    } else if health_path(a.url.path()) {
        (
            &[503],
            "A health page answers 503 when something is down; its body says what, so read it too.",
        )
    } else {
        (&[], "")
    };
    let seen = !(200..300).contains(&a.status);
    if extra.is_empty() && !seen {
        return None;
    }
    let mut codes = vec![200];
    codes.extend_from_slice(extra);
    if !codes.contains(&a.status) {
        codes.push(a.status);
    }
    codes.sort_unstable();
    codes.dedup();
    let why = match (why.is_empty(), seen) {
        (true, _) => format!(
            "It answered HTTP {} with a JSON body: read the body of that status too.",
            a.status
        ),
        (false, true) if !extra.contains(&a.status) => {
            format!(
                "{why} It answered HTTP {} while probed: read that too.",
                a.status
            )
        }
        (false, _) => why.to_string(),
    };
    Some(Accept { codes, why })
}
