//! `--web.config.file`: the Prometheus exporter-toolkit format.
//!
//! ```yaml
//! tls_server_config:
//!   cert_file: server.crt
//!   key_file: server.key
//!   client_ca_file: ca.crt            # optional
//!   client_auth_type: RequireAndVerifyClientCert   # or NoClientCert (default), RequireAnyClientCert, VerifyClientCertIfGiven
//! basic_auth_users:
//!   alice: $2y$10$...                # bcrypt hash
//! ```
//!
//! Every endpoint but `/-/healthy` and `/-/ready` is protected. bcrypt is
//! slow by design (about 90 ms at cost 10), which makes it a lever against
//! remora itself, so [`BasicAuth::check`] bounds it:
//!
//! - at most [`MAX_RUNNING`] bcrypt checks run at once, off the async
//!   threads; at most [`MAX_WAITING`] more wait for a turn, and any request
//!   beyond that is answered 429 at once, without a bcrypt check;
//! - a verified (user, password) pair is remembered ([`VERIFIED_CAPACITY`]
//!   pairs, oldest forgotten first), so a scraper pays bcrypt once; a failed
//!   pair is remembered for [`FAILED_TTL`] ([`FAILED_CAPACITY`] pairs), so a
//!   client repeating a wrong password pays nothing more. Both caches hold an
//!   HMAC-SHA256 of the pair under a key drawn at start, never a password;
//! - an unknown user is checked against a dummy hash of the highest cost in
//!   the file, so it costs what a wrong password costs and user names cannot
//!   be told apart by timing.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ring::hmac;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use tokio::sync::Semaphore;

use crate::config::yaml::{self, Node, NodeKind};

/// bcrypt checks that run at once, at most.
pub const MAX_RUNNING: usize = 2;
/// Requests that wait for a bcrypt turn, at most; more are answered 429. With
/// two running, the last waiter starts after about four checks (0.4 s at cost 10).
pub const MAX_WAITING: usize = 8;
/// How long a failed pair is answered 401 without a bcrypt check.
pub const FAILED_TTL: Duration = Duration::from_secs(30);
/// Failed pairs remembered, at most.
pub const FAILED_CAPACITY: usize = 4096;
/// Verified pairs remembered, at most.
pub const VERIFIED_CAPACITY: usize = 1024;

/// A bcrypt hash (cost 4, of a random password) whose cost digits are
/// replaced to build the dummy hash that unknown users are checked against.
const DUMMY_HASH: &str = "$2b$04$ZCWnb5wlnz/wOdv/yU90ge/J6LW4kWEcp.oTubBCFxoTJOARWSjUO";

/// Why the web config could not be used.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: {key}: {problem}")]
    Invalid {
        path: String,
        line: usize,
        column: usize,
        key: String,
        problem: String,
    },
    #[error("{path}: TLS: {problem}")]
    Tls { path: String, problem: String },
}

/// The loaded web config.
#[derive(Debug, Clone, Default)]
pub struct WebConfig {
    pub tls: Option<Arc<rustls::ServerConfig>>,
    pub auth: Option<Arc<BasicAuth>>,
}

/// What a request's `Authorization` header is worth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthResult {
    Allowed,
    Denied,
    /// Too many bcrypt checks running and waiting: answer 429.
    Busy,
}

type PairKey = [u8; 32];

/// A bounded set of pair keys, oldest out first, each kept at most `ttl`.
#[derive(Debug)]
struct PairCache {
    capacity: usize,
    ttl: Option<Duration>,
    order: VecDeque<(PairKey, Instant)>,
    members: HashMap<PairKey, Instant>,
}

impl PairCache {
    fn new(capacity: usize, ttl: Option<Duration>) -> Self {
        PairCache {
            capacity,
            ttl,
            order: VecDeque::new(),
            members: HashMap::new(),
        }
    }

    fn fresh(&self, added: Instant, now: Instant) -> bool {
        self.ttl
            .is_none_or(|ttl| now.saturating_duration_since(added) < ttl)
    }

    fn contains(&self, key: &PairKey, now: Instant) -> bool {
        self.members
            .get(key)
            .is_some_and(|added| self.fresh(*added, now))
    }

    fn pop_oldest(&mut self) {
        if let Some((key, added)) = self.order.pop_front() {
            if self.members.get(&key) == Some(&added) {
                self.members.remove(&key);
            }
        }
    }

    fn insert(&mut self, key: PairKey, now: Instant) {
        while let Some((_, added)) = self.order.front() {
            if self.fresh(*added, now) && self.order.len() < self.capacity {
                break;
            }
            self.pop_oldest();
        }
        self.members.insert(key, now);
        self.order.push_back((key, now));
    }

    fn len(&self) -> usize {
        self.members.len()
    }
}

/// bcrypt-protected users.
pub struct BasicAuth {
    users: BTreeMap<String, String>,
    /// Checked for unknown users: same cost as the costliest configured hash.
    dummy: String,
    /// Keys the cached pairs (HMAC-SHA256), drawn at start.
    key: hmac::Key,
    verified: Mutex<PairCache>,
    failed: Mutex<PairCache>,
    /// Permits for running and waiting checks together.
    admitted: Arc<Semaphore>,
    /// Permits for running checks.
    running: Arc<Semaphore>,
    verifications: Arc<AtomicU64>,
}

impl std::fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BasicAuth")
            .field("users", &self.users.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// The bcrypt cost of a hash, `None` when it is not a bcrypt hash.
fn bcrypt_cost(hash: &str) -> Option<u32> {
    hash.parse::<bcrypt::HashParts>().ok().map(|p| p.get_cost())
}

impl BasicAuth {
    /// `users` maps names to bcrypt hashes (checked by [`load`]).
    pub fn new(users: BTreeMap<String, String>) -> Self {
        let cost = users
            .values()
            .filter_map(|h| bcrypt_cost(h))
            .max()
            .unwrap_or(bcrypt::DEFAULT_COST);
        let dummy = format!("$2b${cost:02}{}", &DUMMY_HASH[6..]);
        let rng = ring::rand::SystemRandom::new();
        // Without a random key, a fixed one is no weaker than the old plain hash.
        let key = hmac::Key::generate(hmac::HMAC_SHA256, &rng)
            .unwrap_or_else(|_| hmac::Key::new(hmac::HMAC_SHA256, b"remora"));
        BasicAuth {
            users,
            dummy,
            key,
            verified: Mutex::new(PairCache::new(VERIFIED_CAPACITY, None)),
            failed: Mutex::new(PairCache::new(FAILED_CAPACITY, Some(FAILED_TTL))),
            admitted: Arc::new(Semaphore::new(MAX_RUNNING + MAX_WAITING)),
            running: Arc::new(Semaphore::new(MAX_RUNNING)),
            verifications: Arc::new(AtomicU64::new(0)),
        }
    }

    /// bcrypt checks run so far (a test and measurement hook).
    pub fn verifications(&self) -> u64 {
        self.verifications.load(Ordering::Relaxed)
    }

    /// Pairs in the (verified, failed) caches.
    pub fn cached(&self) -> (usize, usize) {
        (
            self.verified
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .len(),
            self.failed.lock().unwrap_or_else(|e| e.into_inner()).len(),
        )
    }

    fn pair_key(&self, user: &str, password: &str) -> PairKey {
        let mut ctx = hmac::Context::with_key(&self.key);
        ctx.update(&(user.len() as u64).to_be_bytes());
        ctx.update(user.as_bytes());
        ctx.update(password.as_bytes());
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.sign().as_ref());
        out
    }

    /// Checks an `Authorization` header value.
    pub async fn check(self: &Arc<Self>, header: Option<&str>) -> AuthResult {
        let Some((user, password)) = header.and_then(decode_basic) else {
            return AuthResult::Denied;
        };
        let key = self.pair_key(&user, &password);
        let now = Instant::now();
        let lock = |m: &Mutex<PairCache>| -> bool {
            m.lock()
                .unwrap_or_else(|e| e.into_inner())
                .contains(&key, now)
        };
        if lock(&self.verified) {
            return AuthResult::Allowed;
        }
        if lock(&self.failed) {
            return AuthResult::Denied;
        }
        let Ok(admitted) = self.admitted.clone().try_acquire_owned() else {
            return AuthResult::Busy;
        };
        let Ok(running) = self.running.clone().acquire_owned().await else {
            return AuthResult::Busy;
        };
        let (hash, known) = match self.users.get(&user) {
            Some(hash) => (hash.clone(), true),
            None => (self.dummy.clone(), false),
        };
        let counter = self.verifications.clone();
        // The permits go with the check, so a client that hangs up does not
        // free a slot while its bcrypt still runs.
        let matched = tokio::task::spawn_blocking(move || {
            let _permits = (admitted, running);
            counter.fetch_add(1, Ordering::Relaxed);
            bcrypt::verify(password, &hash).unwrap_or(false)
        })
        .await
        .unwrap_or(false);
        let ok = matched && known;
        let cache = if ok { &self.verified } else { &self.failed };
        cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, Instant::now());
        if ok {
            AuthResult::Allowed
        } else {
            AuthResult::Denied
        }
    }
}

fn decode_basic(header: &str) -> Option<(String, String)> {
    let encoded = header.strip_prefix("Basic ")?.trim();
    let decoded = base64_decode(encoded)?;
    let text = String::from_utf8(decoded).ok()?;
    let (u, p) = text.split_once(':')?;
    Some((u.to_string(), p.to_string()))
}

fn base64_decode(s: &str) -> Option<Vec<u8>> {
    fn val(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    }
    let s = s.trim_end_matches('=').as_bytes();
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    for chunk in s.chunks(4) {
        let mut acc = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            acc |= val(*c)? << (18 - 6 * i);
        }
        let bytes = acc.to_be_bytes();
        match chunk.len() {
            4 => out.extend_from_slice(&bytes[1..4]),
            3 => out.extend_from_slice(&bytes[1..3]),
            2 => out.push(bytes[1]),
            _ => return None,
        }
    }
    Some(out)
}

fn invalid(path: &Path, node: &Node, key: &str, problem: impl Into<String>) -> WebError {
    WebError::Invalid {
        path: path.display().to_string(),
        line: node.mark.line,
        column: node.mark.column,
        key: key.into(),
        problem: problem.into(),
    }
}

fn scalar<'a>(path: &Path, node: &'a Node, key: &str) -> Result<&'a str, WebError> {
    match &node.kind {
        NodeKind::Scalar { text, .. } => Ok(text),
        _ => Err(invalid(path, node, key, "expected a string")),
    }
}

fn entries<'a>(path: &Path, node: &'a Node, key: &str) -> Result<&'a [(Node, Node)], WebError> {
    match &node.kind {
        NodeKind::Map(m) => Ok(m),
        _ if node.is_null() => Ok(&[]),
        _ => Err(invalid(path, node, key, "expected a mapping")),
    }
}

fn resolve(base: &Path, file: &str) -> PathBuf {
    let p = PathBuf::from(file);
    if p.is_absolute() {
        p
    } else {
        base.parent().unwrap_or(Path::new(".")).join(p)
    }
}

/// Loads and checks a web config file.
pub fn load(path: &Path) -> Result<WebConfig, WebError> {
    let text = std::fs::read_to_string(path).map_err(|source| WebError::Read {
        path: path.display().to_string(),
        source,
    })?;
    let root = yaml::parse(&text).map_err(|e| WebError::Invalid {
        path: path.display().to_string(),
        line: e.mark.line,
        column: e.mark.column,
        key: "(yaml)".into(),
        problem: e.message,
    })?;
    let mut config = WebConfig::default();
    for (k, v) in entries(path, &root, "")? {
        let key = scalar(path, k, "")?;
        match key {
            "tls_server_config" => {
                let mut cert = None;
                let mut keyf = None;
                let mut client_ca = None;
                let mut auth_type = "NoClientCert".to_string();
                for (tk, tv) in entries(path, v, key)? {
                    let name = scalar(path, tk, key)?;
                    let full = format!("{key}.{name}");
                    let val = scalar(path, tv, &full)?;
                    match name {
                        "cert_file" => cert = Some(resolve(path, val)),
                        "key_file" => keyf = Some(resolve(path, val)),
                        "client_ca_file" => client_ca = Some(resolve(path, val)),
                        "client_auth_type" => auth_type = val.to_string(),
                        "min_version" | "max_version" | "cipher_suites" | "curve_preferences" | "prefer_server_cipher_suites" => {}
                        _ => return Err(invalid(path, tk, &full, "unknown key (expected cert_file, key_file, client_ca_file, client_auth_type)")),
                    }
                }
                let (Some(cert), Some(keyf)) = (cert, keyf) else {
                    return Err(invalid(path, v, key, "cert_file and key_file are required"));
                };
                config.tls = Some(Arc::new(tls_config(
                    path,
                    &cert,
                    &keyf,
                    client_ca.as_deref(),
                    &auth_type,
                    v,
                )?));
            }
            "basic_auth_users" => {
                let mut users = BTreeMap::new();
                for (uk, uv) in entries(path, v, key)? {
                    let user = scalar(path, uk, key)?.to_string();
                    let hash = scalar(path, uv, &format!("{key}.{user}"))?.to_string();
                    if bcrypt_cost(&hash).is_none() {
                        return Err(invalid(
                            path,
                            uv,
                            &format!("{key}.{user}"),
                            "expected a bcrypt hash ($2y$...)",
                        ));
                    }
                    users.insert(user, hash);
                }
                if !users.is_empty() {
                    config.auth = Some(Arc::new(BasicAuth::new(users)));
                }
            }
            "http_server_config" => {}
            other => {
                return Err(invalid(
                    path,
                    k,
                    other,
                    "unknown key (expected tls_server_config, basic_auth_users)",
                ))
            }
        }
    }
    Ok(config)
}

fn tls_config(
    path: &Path,
    cert: &Path,
    key: &Path,
    client_ca: Option<&Path>,
    auth_type: &str,
    node: &Node,
) -> Result<rustls::ServerConfig, WebError> {
    let tls_err = |problem: String| WebError::Tls {
        path: path.display().to_string(),
        problem,
    };
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| tls_err(format!("cert_file {}: {e}", cert.display())))?;
    let key_der = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| tls_err(format!("key_file {}: {e}", key.display())))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_err(e.to_string()))?;
    let builder = match auth_type {
        "" | "NoClientCert" => builder.with_no_client_auth(),
        "RequireAndVerifyClientCert" | "VerifyClientCertIfGiven" | "RequireAnyClientCert" => {
            let ca = client_ca.ok_or_else(|| invalid(path, node, "tls_server_config.client_ca_file", format!("required with client_auth_type {auth_type}")))?;
            let mut roots = rustls::RootCertStore::empty();
            let ca_certs = CertificateDer::pem_file_iter(ca)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(|e| tls_err(format!("client_ca_file {}: {e}", ca.display())))?;
            roots.add_parsable_certificates(ca_certs);
            let mut v = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            if auth_type == "VerifyClientCertIfGiven" {
                v = v.allow_unauthenticated();
            }
            let verifier = v.build().map_err(|e| tls_err(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
        other => {
            return Err(invalid(path, node, "tls_server_config.client_auth_type", format!("{other:?} is not supported (expected NoClientCert, RequireAndVerifyClientCert, VerifyClientCertIfGiven)")))
        }
    };
    let mut config = builder
        .with_single_cert(certs, key_der)
        .map_err(|e| tls_err(e.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64() {
        assert_eq!(base64_decode("YWxpY2U6c2VjcmV0").unwrap(), b"alice:secret");
        assert_eq!(base64_decode("YQ==").unwrap(), b"a");
        assert_eq!(base64_decode("YWI=").unwrap(), b"ab");
        assert!(base64_decode("!!!").is_none());
    }

    #[tokio::test]
    async fn basic_auth_checks_bcrypt_and_caches() {
        let hash = bcrypt::hash("secret", 4).unwrap();
        let auth = Arc::new(BasicAuth::new([("alice".to_string(), hash)].into()));
        let good = Some("Basic YWxpY2U6c2VjcmV0");
        assert_eq!(auth.check(good).await, AuthResult::Allowed);
        assert_eq!(auth.check(good).await, AuthResult::Allowed);
        assert_eq!(auth.verifications(), 1);
        let wrong = Some("Basic YWxpY2U6d3Jvbmc=");
        assert_eq!(auth.check(wrong).await, AuthResult::Denied);
        assert_eq!(auth.check(wrong).await, AuthResult::Denied);
        assert_eq!(auth.verifications(), 2);
        assert_eq!(auth.check(None).await, AuthResult::Denied);
        assert_eq!(auth.check(Some("Bearer x")).await, AuthResult::Denied);
        assert_eq!(auth.cached(), (1, 1));
    }

    #[test]
    fn dummy_hash_is_a_bcrypt_hash_of_the_highest_cost() {
        let users = [
            ("a".to_string(), bcrypt::hash("x", 4).unwrap()),
            ("b".to_string(), bcrypt::hash("y", 5).unwrap()),
        ];
        let auth = BasicAuth::new(users.into());
        assert_eq!(bcrypt_cost(&auth.dummy), Some(5));
        assert!(!bcrypt::verify("x", &auth.dummy).unwrap());
    }

    #[test]
    fn pair_caches_are_bounded_and_expire() {
        let t0 = Instant::now();
        let mut c = PairCache::new(3, Some(Duration::from_secs(30)));
        for i in 0..10u8 {
            c.insert([i; 32], t0);
        }
        assert_eq!(c.len(), 3);
        assert!(c.contains(&[9; 32], t0) && !c.contains(&[6; 32], t0));
        assert!(!c.contains(&[9; 32], t0 + Duration::from_secs(30)));
        c.insert([1; 32], t0 + Duration::from_secs(31));
        assert_eq!(c.len(), 1);
        // A pair inserted again stays after its older entry goes.
        let mut c = PairCache::new(2, None);
        c.insert([1; 32], t0);
        c.insert([1; 32], t0 + Duration::from_secs(1));
        c.insert([2; 32], t0 + Duration::from_secs(2));
        assert!(c.contains(&[1; 32], t0 + Duration::from_secs(3)));
    }

    #[test]
    fn pair_keys_hold_no_password_and_separate_users() {
        let auth = BasicAuth::new(BTreeMap::new());
        let k = auth.pair_key("ab", "c");
        assert_ne!(k, auth.pair_key("a", "bc"));
        assert_eq!(k, auth.pair_key("ab", "c"));
        assert!(!k.windows(1).all(|w| w[0] == 0));
    }

    #[test]
    fn unknown_keys_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("web.yml");
        std::fs::write(&p, "basic_auth_user:\n  a: b\n").unwrap();
        let e = load(&p).unwrap_err().to_string();
        assert!(e.contains(":1:1: basic_auth_user: unknown key"), "{e}");
        std::fs::write(&p, "basic_auth_users:\n  a: plain\n").unwrap();
        assert!(load(&p).unwrap_err().to_string().contains("bcrypt"));
    }
}
