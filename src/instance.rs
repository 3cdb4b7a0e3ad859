//! This process's identity on the wire (issue 28): a random token, drawn
//! once per process, that every response of remora's HTTP server carries in
//! the [`HEADER`] header. A poll whose response carries this same token
//! reached remora's own server, through an address the load check cannot
//! know (a TCP forwarder, another address of the machine, a Service name):
//! the poller refuses it (`remora_target_polls_total{result="self_scrape"}`)
//! instead of nesting `exported_` prefixes one level deeper each poll.
//! Another remora process has another token and is polled as usual.

use std::sync::OnceLock;

use ring::rand::{SecureRandom, SystemRandom};

/// The response header that carries the token.
pub const HEADER: &str = "x-remora-instance";

static TOKEN: OnceLock<String> = OnceLock::new();

/// The token: 32 lowercase hex digits (128 random bits), the same for the
/// whole life of the process.
pub fn token() -> &'static str {
    TOKEN.get_or_init(|| {
        let mut bytes = [0u8; 16];
        if SystemRandom::new().fill(&mut bytes).is_err() {
            // No system randomness: the pid, the clock and std's per-process
            // hash keys still tell two processes apart.
            bytes = fallback();
        }
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    })
}

fn fallback() -> [u8; 16] {
    use std::hash::{BuildHasher, Hasher};
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mut out = [0u8; 16];
    for (i, half) in out.chunks_mut(8).enumerate() {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(nanos);
        h.write_u32(std::process::id());
        h.write_usize(i);
        half.copy_from_slice(&h.finish().to_le_bytes());
    }
    out
}

/// The token as a header value.
pub fn header_value() -> hyper::header::HeaderValue {
    // Hex digits are always a valid header value.
    hyper::header::HeaderValue::from_str(token())
        .unwrap_or_else(|_| hyper::header::HeaderValue::from_static("invalid"))
}

/// Whether a response's headers carry this process's token.
pub fn is_own(headers: &hyper::header::HeaderMap) -> bool {
    headers
        .get_all(HEADER)
        .iter()
        .any(|v| v.as_bytes() == token().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_is_stable_hex_and_recognised_only_as_itself() {
        let t = token();
        assert_eq!(t.len(), 32);
        assert!(t.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(token(), t);
        let mut own = hyper::header::HeaderMap::new();
        own.insert(HEADER, header_value());
        assert!(is_own(&own));
        let mut other = hyper::header::HeaderMap::new();
        other.insert(
            HEADER,
            hyper::header::HeaderValue::from_static("0123456789abcdef0123456789abcdef"),
        );
        assert!(!is_own(&other));
        assert!(!is_own(&hyper::header::HeaderMap::new()));
        assert_ne!(fallback(), fallback());
    }
}
