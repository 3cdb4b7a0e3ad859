//! The HTTP client of a target (shared by the targets of one setting,
//! [`build_shared`]): TLS settings (CA, client certificate,
//! server name, skip-verify), redirects, connection reuse.
//!
//! reqwest's own redirect handling is off: [`send`] follows redirects itself
//! (at most [`MAX_REDIRECTS`], per `follow_redirects`) so that the request's
//! headers and credentials are sent to the target's origin only (scheme,
//! host and port of the configured URL), never to a host or port a redirect
//! names. Methods and bodies change as in browsers and reqwest: POST becomes
//! GET without a body on 301 and 302, everything but HEAD becomes GET on 303,
//! 307 and 308 repeat the request as it was.

use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};

use bytes::Bytes;
use reqwest::header::{
    HeaderMap, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, LOCATION, TRANSFER_ENCODING,
};
use reqwest::{Method, StatusCode, Url};

use crate::config::{FollowRedirects, Target, TlsConfig};

/// Redirects followed per poll at most; the next one fails the poll.
pub const MAX_REDIRECTS: usize = 5;

/// Why a target's client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("tls.{key}: cannot read {path}: {reason}")]
    File {
        key: &'static str,
        path: String,
        reason: String,
    },
    #[error("tls: {0}")]
    Tls(String),
    #[error("http client: {0}")]
    Http(#[from] reqwest::Error),
    #[error("HTTP status {status} redirects to another origin ({origin}); follow_redirects: same_origin does not follow it")]
    CrossOrigin { status: u16, origin: String },
    #[error("HTTP status {status}: too many redirects (more than {MAX_REDIRECTS})")]
    TooManyRedirects { status: u16 },
    #[error("HTTP status {status} redirects to a {scheme}: URL (expected http or https)")]
    RedirectScheme { status: u16, scheme: String },
}

impl ClientError {
    /// The HTTP status of the response that caused the error (0 when none).
    pub fn status(&self) -> u16 {
        match self {
            ClientError::CrossOrigin { status, .. }
            | ClientError::TooManyRedirects { status }
            | ClientError::RedirectScheme { status, .. } => *status,
            _ => 0,
        }
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn roots(tls: &TlsConfig) -> Result<Arc<RootCertStore>, ClientError> {
    let mut roots = RootCertStore::empty();
    match &tls.ca_file {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(|e| ClientError::File {
                    key: "ca_file",
                    path: path.display().to_string(),
                    reason: e.to_string(),
                })?;
            if certs.is_empty() {
                return Err(ClientError::File {
                    key: "ca_file",
                    path: path.display().to_string(),
                    reason: "no PEM certificate in it".into(),
                });
            }
            roots.add_parsable_certificates(certs);
        }
        None => return Ok(native_roots()),
    }
    Ok(Arc::new(roots))
}

/// The system's CA certificates, loaded once and shared by every target.
fn native_roots() -> Arc<RootCertStore> {
    static ROOTS: OnceLock<Arc<RootCertStore>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let mut roots = RootCertStore::empty();
            roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
            Arc::new(roots)
        })
        .clone()
}

/// Makes ring the process-wide rustls provider (reqwest's plain-HTTP clients
/// need one for redirects to HTTPS). Idempotent.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Verifies the certificate against a configured name instead of the URL's host.
#[derive(Debug)]
struct NamedVerifier {
    inner: Arc<WebPkiServerVerifier>,
    name: ServerName<'static>,
}

impl ServerCertVerifier for NamedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.inner
            .verify_server_cert(end_entity, intermediates, &self.name, ocsp, now)
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Accepts any certificate (`insecure_skip_verify: true`).
#[derive(Debug)]
struct NoVerify(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

pub(crate) fn tls_config(tls: &TlsConfig) -> Result<rustls::ClientConfig, ClientError> {
    let provider = provider();
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| ClientError::Tls(e.to_string()))?;
    let builder = if tls.insecure_skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
    } else {
        let roots = roots(tls)?;
        match &tls.server_name {
            Some(name) => {
                let inner = WebPkiServerVerifier::builder_with_provider(roots, provider)
                    .build()
                    .map_err(|e| ClientError::Tls(e.to_string()))?;
                let name = ServerName::try_from(name.clone())
                    .map_err(|e| ClientError::Tls(format!("server_name {name:?}: {e}")))?;
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(NamedVerifier { inner, name }))
            }
            None => builder.with_root_certificates(roots),
        }
    };
    match (&tls.cert_file, &tls.key_file) {
        (Some(cert), Some(key)) => {
            let certs = CertificateDer::pem_file_iter(cert)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(|e| ClientError::File {
                    key: "cert_file",
                    path: cert.display().to_string(),
                    reason: e.to_string(),
                })?;
            let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| ClientError::File {
                key: "key_file",
                path: key.display().to_string(),
                reason: e.to_string(),
            })?;
            builder
                .with_client_auth_cert(certs, key_der)
                .map_err(|e| ClientError::Tls(e.to_string()))
        }
        _ => Ok(builder.with_no_client_auth()),
    }
}

/// The most targets whose connections stay open between polls: past it a
/// poll opens a connection and closes it when done (an idle HTTP/1
/// connection holds about 25 KB of buffers and channel in hyper, more than
/// the rest of an idle target).
pub const KEEP_ALIVE_UP_TO: usize = 256;

/// Builds the client of one target. TLS files are read here, once per (re)load.
pub fn build(target: &Target) -> Result<reqwest::Client, ClientError> {
    build_with(target, 1)
}

/// What makes two targets' clients differ: the TLS set-up (a target's own
/// for HTTPS; none, or the system roots when a redirect may lead to HTTPS,
/// for HTTP) and the connect timeout. Credentials, headers and the request
/// timeout go with each request; redirects are followed by [`send`].
#[derive(Debug, Clone, PartialEq)]
struct Setting {
    tls: Option<TlsConfig>,
    roots: bool,
    connect_timeout: std::time::Duration,
}

impl Setting {
    fn of(target: &Target) -> Self {
        let https = target.url.scheme() == "https";
        Setting {
            tls: https.then(|| target.tls.clone()),
            roots: !https && target.follow_redirects == FollowRedirects::Any,
            connect_timeout: target.timeout,
        }
    }
}

/// The clients of a config's targets, one per distinct `Setting` shared
/// by every target that has it (a client costs its TLS config, session
/// cache and connection pool: tens of KB). Each keeps up to `idle`
/// connections per host open between polls, times the number of targets
/// sharing it (0: none). Returns a client per target, in order; an error
/// names the index of the target whose client could not be built.
pub fn build_shared(
    targets: &[Arc<Target>],
    idle: usize,
) -> Result<Vec<reqwest::Client>, (usize, ClientError)> {
    let settings: Vec<Setting> = targets.iter().map(|t| Setting::of(t)).collect();
    let mut built: Vec<(Setting, usize, Option<reqwest::Client>)> = Vec::new();
    for s in &settings {
        match built.iter_mut().find(|(b, _, _)| b == s) {
            Some((_, n, _)) => *n += 1,
            None => built.push((s.clone(), 1, None)),
        }
    }
    let mut out = Vec::with_capacity(targets.len());
    for (i, (t, s)) in targets.iter().zip(&settings).enumerate() {
        let Some((_, n, client)) = built.iter_mut().find(|(b, _, _)| b == s) else {
            continue;
        };
        let client = match client {
            Some(c) => c.clone(),
            None => {
                let c = build_with(t, idle.saturating_mul(*n)).map_err(|e| (i, e))?;
                *client = Some(c.clone());
                c
            }
        };
        out.push(client);
    }
    Ok(out)
}

/// As [`build`]; `idle`: how many connections per host stay open between
/// polls (0 when the targets outnumber the descriptors they may hold, see
/// `crate::fdlimit`). The request timeout is set on each request too, so a
/// client may be shared by targets of several timeouts.
pub fn build_with(target: &Target, idle: usize) -> Result<reqwest::Client, ClientError> {
    install_crypto_provider();
    let mut builder = reqwest::Client::builder()
        .user_agent(concat!("remora/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none())
        .timeout(target.timeout)
        .connect_timeout(target.timeout)
        .pool_max_idle_per_host(idle)
        .no_proxy()
        .http1_only();
    if target.url.scheme() == "https" {
        builder = builder.tls_backend_preconfigured(tls_config(&target.tls)?);
    } else if target.follow_redirects != FollowRedirects::Any {
        // Plain HTTP that no redirect can take to HTTPS (same origin or none):
        // no CA roots, so reqwest does not read every system CA file for
        // this client (half of remora's start-up time).
        builder = builder.tls_backend_preconfigured(no_roots_config()?);
    }
    Ok(builder.build()?)
}

/// A TLS config that trusts nothing, for clients that never use TLS.
fn no_roots_config() -> Result<rustls::ClientConfig, ClientError> {
    Ok(rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| ClientError::Tls(e.to_string()))?
        .with_root_certificates(RootCertStore::empty())
        .with_no_client_auth())
}

/// Where a redirect response points, resolved against the URL it answered.
/// `None` when it is not a redirect or has no usable `Location` (then it is
/// the response, as in reqwest).
fn redirect_target(response: &reqwest::Response, url: &Url) -> Option<Url> {
    if !matches!(response.status().as_u16(), 301 | 302 | 303 | 307 | 308) {
        return None;
    }
    let location = std::str::from_utf8(response.headers().get(LOCATION)?.as_bytes()).ok()?;
    url.join(location).ok()
}

/// Sends `request` and follows redirects as `follow` says. The request's
/// headers (configured headers, basic auth, bearer token) go with a hop only
/// when its origin is the origin of `request`'s URL.
pub async fn send(
    client: &reqwest::Client,
    request: reqwest::Request,
    follow: FollowRedirects,
) -> Result<reqwest::Response, ClientError> {
    let origin = request.url().origin();
    let headers = request.headers().clone();
    let timeout = request.timeout().copied();
    let mut body = match request.body() {
        None => None,
        Some(b) => match b.as_bytes() {
            Some(bytes) => Some(Bytes::copy_from_slice(bytes)),
            // A streamed body cannot be sent twice: no redirects then.
            None => return Ok(client.execute(request).await?),
        },
    };
    let mut method = request.method().clone();
    let mut url = request.url().clone();
    let mut payload_dropped = false;
    let mut response = client.execute(request).await?;
    let mut redirects = 0;
    loop {
        if follow == FollowRedirects::None {
            return Ok(response);
        }
        let Some(next) = redirect_target(&response, &url) else {
            return Ok(response);
        };
        let status = response.status();
        if !matches!(next.scheme(), "http" | "https") {
            return Err(ClientError::RedirectScheme {
                status: status.as_u16(),
                scheme: next.scheme().to_string(),
            });
        }
        let same_origin = next.origin() == origin;
        if !same_origin && follow == FollowRedirects::SameOrigin {
            return Err(ClientError::CrossOrigin {
                status: status.as_u16(),
                origin: next.origin().ascii_serialization(),
            });
        }
        if redirects == MAX_REDIRECTS {
            return Err(ClientError::TooManyRedirects {
                status: status.as_u16(),
            });
        }
        redirects += 1;
        match status {
            StatusCode::MOVED_PERMANENTLY | StatusCode::FOUND if method == Method::POST => {
                method = Method::GET;
                body = None;
                payload_dropped = true;
            }
            StatusCode::SEE_OTHER => {
                if method != Method::HEAD {
                    method = Method::GET;
                }
                body = None;
                payload_dropped = true;
            }
            _ => {}
        }
        let mut hop = reqwest::Request::new(method.clone(), next.clone());
        *hop.timeout_mut() = timeout;
        if same_origin {
            *hop.headers_mut() = hop_headers(&headers, payload_dropped);
        }
        *hop.body_mut() = body.clone().map(reqwest::Body::from);
        url = next;
        response = client.execute(hop).await?;
    }
}

/// The request's headers for a same-origin hop, without the payload's
/// description once the body was dropped.
fn hop_headers(headers: &HeaderMap, payload_dropped: bool) -> HeaderMap {
    let mut h = headers.clone();
    if payload_dropped {
        for name in [
            CONTENT_TYPE,
            CONTENT_LENGTH,
            CONTENT_ENCODING,
            TRANSFER_ENCODING,
        ] {
            h.remove(name);
        }
    }
    h
}
