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
//! Every endpoint but `/-/healthy` and `/-/ready` is protected. bcrypt is slow
//! by design, so a verified (user, password) pair is cached (as a hash of the
//! pair, never the password) and checked off the async threads.

use std::collections::{BTreeMap, HashSet};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;

use crate::config::yaml::{self, Node, NodeKind};

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

/// bcrypt-protected users.
#[derive(Debug)]
pub struct BasicAuth {
    users: BTreeMap<String, String>,
    verified: Mutex<HashSet<u64>>,
}

fn pair_key(user: &str, password: &str) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    user.hash(&mut h);
    password.hash(&mut h);
    h.finish()
}

impl BasicAuth {
    pub fn new(users: BTreeMap<String, String>) -> Self {
        BasicAuth {
            users,
            verified: Mutex::new(HashSet::new()),
        }
    }

    /// Checks an `Authorization` header value.
    pub async fn check(self: &Arc<Self>, header: Option<&str>) -> bool {
        let Some((user, password)) = header.and_then(decode_basic) else {
            return false;
        };
        let Some(hash) = self.users.get(&user).cloned() else {
            return false;
        };
        let key = pair_key(&user, &password);
        if self
            .verified
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&key)
        {
            return true;
        }
        let ok =
            tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash).unwrap_or(false))
                .await
                .unwrap_or(false);
        if ok {
            let mut cache = self.verified.lock().unwrap_or_else(|e| e.into_inner());
            if cache.len() > 1024 {
                cache.clear();
            }
            cache.insert(key);
        }
        ok
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
                    if !hash.starts_with("$2") {
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
        assert!(auth.check(Some("Basic YWxpY2U6c2VjcmV0")).await);
        assert!(auth.check(Some("Basic YWxpY2U6c2VjcmV0")).await);
        assert!(!auth.check(Some("Basic YWxpY2U6d3Jvbmc=")).await);
        assert!(!auth.check(None).await);
        assert!(!auth.check(Some("Bearer x")).await);
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
