//! Status vocabularies: the families of state words products report, so
//! that a state set `init` writes from one body lists every state the
//! product can answer with, its failure states included, and not only the
//! one seen while probing.
//!
//! Each family is a product vocabulary in its own order (the healthy word
//! first), and most words are in one family only: a field resolves to the
//! families that hold every word seen in it (`ok` alone and `failing` alone
//! both give the ok family, so a config written from Grafana's healthy body
//! and one written from its failing body list the same states). A word in
//! several families (`failed`: RabbitMQ's and Kafka Connect's, `warning`:
//! Consul's and the ok family, `unknown`) seen alone brings them all, so
//! that no value of either product is left out, unless the case tells them
//! apart (Kafka Connect and Envoy write capitals: `FAILED` is Kafka
//! Connect's, `failed` RabbitMQ's). When no family holds every word seen
//! (words of two vocabularies in one field), each word's families are
//! taken. The states come in the families' order, after any seen word no
//! family knows, in the case the app writes (capitals when it writes them).
//!
//! A value outside the states at run time is served as one more state,
//! `state="other"` (`crate::config::OTHER_STATE`, documented in
//! docs/configuration.md), never silently 0 everywhere.
//!
//! Vault's `sealed`/`standby`/`initialized` and etcd's `"true"`/`"false"`
//! are booleans (0/1), not state sets: `classify` reads them so.

use std::collections::BTreeSet;

/// One product vocabulary: where it comes from and its words (lower case,
/// the healthy one first).
pub struct Family {
    pub products: &'static str,
    pub words: &'static [&'static str],
    /// The products write these words in capitals (Kafka Connect's
    /// `FAILED`, Envoy's `LIVE`): a tie-breaker between families that
    /// share a word (RabbitMQ's `failed` is not Kafka Connect's).
    pub capitals: bool,
}

/// The families, most specific first (a word seen alone resolves to the
/// first family holding it).
pub const FAMILIES: [Family; 17] = [
    Family {
        products: "FastAPI-style health pages, many HTTP health libraries",
        words: &["healthy", "degraded", "unhealthy"],
        capitals: false,
    },
    Family {
        products: "Spring Boot Actuator, MicroProfile Health, Keycloak, Terminus indicators",
        words: &["up", "down", "out_of_service", "unknown"],
        capitals: false,
    },
    Family {
        products: "IETF health+json draft",
        words: &["pass", "warn", "fail"],
        capitals: false,
    },
    Family {
        products: "Grafana's database check, NestJS Terminus, RabbitMQ health checks, generic",
        words: &[
            "ok",
            "warning",
            "error",
            "failing",
            "failed",
            "shutting_down",
        ],
        capitals: false,
    },
    Family {
        products: "readiness pages",
        words: &["ready", "not_ready"],
        capitals: false,
    },
    Family {
        products: "liveness pages",
        words: &["alive", "dead"],
        capitals: false,
    },
    Family {
        products: "Elasticsearch and OpenSearch cluster health",
        words: &["green", "yellow", "red"],
        capitals: false,
    },
    Family {
        products: "gRPC health",
        words: &["serving", "not_serving", "service_unknown"],
        capitals: false,
    },
    Family {
        products: "Kafka Connect connectors and tasks, workers and jobs",
        words: &[
            "running",
            "paused",
            "failed",
            "unassigned",
            "restarting",
            "stopped",
            "starting",
        ],
        capitals: true,
    },
    Family {
        products: "Consul checks",
        words: &["passing", "warning", "critical", "maintenance"],
        capitals: false,
    },
    Family {
        products: "Envoy's server state",
        words: &["live", "draining", "pre_initializing", "initializing"],
        capitals: true,
    },
    Family {
        products: "Vault replication modes",
        words: &[
            "disabled",
            "primary",
            "secondary",
            "bootstrapping",
            "unknown",
        ],
        capitals: false,
    },
    Family {
        products: "switches",
        words: &["enabled", "disabled"],
        capitals: false,
    },
    Family {
        products: "RabbitMQ rates_mode",
        words: &["basic", "detailed", "none"],
        capitals: false,
    },
    Family {
        products: "high availability",
        words: &["active", "standby"],
        capitals: false,
    },
    Family {
        products: "consensus roles (Raft)",
        words: &["leader", "follower", "candidate"],
        capitals: false,
    },
    Family {
        products: "connectivity",
        words: &["online", "offline"],
        capitals: false,
    },
];

/// Words that name a failure: a state set with one of these is the app's
/// own health signal.
const FAILURE_WORDS: [&str; 13] = [
    "down",
    "fail",
    "failed",
    "failing",
    "error",
    "unhealthy",
    "critical",
    "red",
    "dead",
    "not_ready",
    "not_serving",
    "draining",
    "out_of_service",
];

/// Whether `word` (any case) is a word of some family.
pub fn known(word: &str) -> bool {
    let w = word.to_ascii_lowercase();
    FAMILIES.iter().any(|f| f.words.contains(&w.as_str()))
}

/// Whether the states include a failure word.
pub fn names_failure(states: &[String]) -> bool {
    states
        .iter()
        .any(|s| FAILURE_WORDS.contains(&s.to_ascii_lowercase().as_str()))
}

/// The states of a state set whose field showed the words `seen`: the seen
/// words no family knows, then the words of the family they resolve to
/// (see the module doc), in the case the app writes; and whether a family
/// was found.
pub fn states(seen: &BTreeSet<String>) -> (Vec<String>, bool) {
    let lower: Vec<String> = seen.iter().map(|s| s.to_ascii_lowercase()).collect();
    let holds = |f: &Family, w: &str| f.words.contains(&w);
    let mut families: Vec<&Family> = FAMILIES
        .iter()
        .filter(|f| lower.iter().all(|w| holds(f, w)))
        .collect();
    if families.is_empty() {
        families = FAMILIES
            .iter()
            .filter(|f| lower.iter().any(|w| holds(f, w)))
            .collect();
    }
    let upper = seen.iter().any(|s| {
        s.chars().any(|c| c.is_ascii_uppercase()) && !s.chars().any(|c| c.is_ascii_lowercase())
    });
    if families.len() > 1 && families.iter().any(|f| f.capitals == upper) {
        families.retain(|f| f.capitals == upper);
    }
    let mut out: Vec<String> = seen
        .iter()
        .filter(|s| !families.iter().any(|f| holds(f, &s.to_ascii_lowercase())))
        .cloned()
        .collect();
    for f in &families {
        for w in f.words {
            // A word seen in another case than the family's is kept as seen.
            let w = match seen.iter().find(|s| s.eq_ignore_ascii_case(w)) {
                Some(s) => s.clone(),
                None if upper => w.to_ascii_uppercase(),
                None => (*w).to_string(),
            };
            if !out.iter().any(|o| o.eq_ignore_ascii_case(&w)) {
                out.push(w);
            }
        }
    }
    (out, !families.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(words: &[&str]) -> Vec<String> {
        states(&words.iter().map(|w| w.to_string()).collect()).0
    }

    #[test]
    fn a_word_alone_and_its_failure_word_give_the_same_states() {
        // Grafana healthy and failing, Terminus ok and error, RabbitMQ ok and failed.
        assert_eq!(of(&["ok"]), of(&["failing"]));
        assert_eq!(of(&["ok"]), of(&["error"]));
        assert_eq!(of(&["ok"]), of(&["ok", "failed"]));
        assert_eq!(of(&["green"]), of(&["red"]));
        assert_eq!(of(&["UP"]), of(&["DOWN"]));
        assert_eq!(of(&["UP"]), ["UP", "DOWN", "OUT_OF_SERVICE", "UNKNOWN"]);
        assert_eq!(of(&["passing"]), of(&["critical", "passing"]));
        assert_eq!(of(&["LIVE"]), of(&["DRAINING"]));
        assert_eq!(of(&["RUNNING"]), of(&["FAILED", "RUNNING"]));
    }

    #[test]
    fn a_word_of_several_families_brings_them_all_and_unknown_words_stay() {
        // RabbitMQ's failed alone lists ok, Kafka Connect's FAILED alone
        // RUNNING; the case tells them apart.
        assert_eq!(of(&["failed"]), of(&["ok"]));
        assert_eq!(of(&["FAILED"]), of(&["RUNNING"]));
        // Consul's warning alone: Consul's family and the ok family.
        let s = of(&["warning"]);
        assert!(
            s.contains(&"critical".into()) && s.contains(&"ok".into()),
            "{s:?}"
        );
        let s = of(&["weird", "UP"]);
        assert_eq!(s[..2], ["weird".to_string(), "UP".to_string()]);
        assert!(!of(&["ok"]).contains(&"other".to_string()));
        assert!(names_failure(&of(&["UP"])) && !names_failure(&of(&["basic"])));
    }
}
