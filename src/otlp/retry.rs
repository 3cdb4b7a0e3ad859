//! When a failed push is tried again: remora's own retry policy, run on its
//! runtime so that every wait is a timer that a shutdown or a reload can cut
//! short (the OTLP exporter's own retry sleeps on the reader's thread and
//! never sees the response's headers, so its retries are turned off).
//!
//! - Retryable: no connection or no answer, 429, 502, 503, 504; at most
//!   [`MAX_RETRIES`] retries, exponential backoff 100 ms doubling to 1.6 s
//!   with up to 100 ms of jitter.
//! - `Retry-After` on a 429 or 503 (delta-seconds or an HTTP-date) is the
//!   least wait before the next attempt, capped at the push interval; when
//!   it does not fit in what is left of the push's timeout (or of the
//!   shutdown's deadline) the push gives up at once and the next one is not
//!   sent before it has passed.

use std::time::{Duration, SystemTime};

/// Retries after the first attempt.
pub(super) const MAX_RETRIES: u32 = 3;
const INITIAL: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_millis(1600);
const MAX_JITTER_MS: u64 = 100;

/// Statuses tried again (OTLP/HTTP's retryable ones).
pub(super) fn retryable(status: u16) -> bool {
    matches!(status, 429 | 502 | 503 | 504)
}

/// A `Retry-After` value as a delay from `now`: delta-seconds, or an
/// HTTP-date (a date in the past is no delay). `None` when unreadable.
pub(super) fn retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The backoff before retry `attempt` (1 for the first retry), without jitter.
pub(super) fn backoff(attempt: u32) -> Duration {
    let doublings = attempt.saturating_sub(1).min(16);
    INITIAL.saturating_mul(1 << doublings).min(MAX_BACKOFF)
}

/// Up to 100 ms of jitter, from the clock's nanoseconds.
pub(super) fn jitter() -> Duration {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    Duration::from_millis(u64::from(nanos) % (MAX_JITTER_MS + 1))
}

/// The wait before retry `attempt` after a response with `status` (None:
/// no answer) and `retry_after`: the backoff, or the server's delay when
/// longer (a 429 or 503's `Retry-After`, capped at `interval`).
pub(super) fn wait(
    attempt: u32,
    status: Option<u16>,
    retry_after: Option<Duration>,
    interval: Duration,
    jitter: Duration,
) -> Duration {
    let backoff = (backoff(attempt) + jitter).min(MAX_BACKOFF);
    match (status, server_delay(status, retry_after, interval)) {
        (Some(_), Some(delay)) => backoff.max(delay),
        _ => backoff,
    }
}

/// The server's delay that counts: a 429 or 503's `Retry-After`, capped at
/// `interval`.
pub(super) fn server_delay(
    status: Option<u16>,
    retry_after: Option<Duration>,
    interval: Duration,
) -> Option<Duration> {
    match status {
        Some(429 | 503) => retry_after.map(|d| d.min(interval)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(retry_after(" 7 ", now), Some(Duration::from_secs(7)));
        let date = httpdate::fmt_http_date(now + Duration::from_secs(30));
        assert_eq!(retry_after(&date, now), Some(Duration::from_secs(30)));
        let past = httpdate::fmt_http_date(now - Duration::from_secs(30));
        assert_eq!(retry_after(&past, now), Some(Duration::ZERO));
        assert_eq!(retry_after("soon", now), None);
        assert_eq!(retry_after("-1", now), None);
    }

    #[test]
    fn the_wait_is_the_backoff_or_the_servers_delay_up_to_the_interval() {
        let i = Duration::from_secs(10);
        let z = Duration::ZERO;
        assert_eq!(wait(1, None, None, i, z), Duration::from_millis(100));
        assert_eq!(wait(3, Some(502), None, i, z), Duration::from_millis(400));
        assert_eq!(wait(9, None, None, i, z), MAX_BACKOFF);
        let ra = Some(Duration::from_secs(3));
        assert_eq!(wait(1, Some(429), ra, i, z), Duration::from_secs(3));
        assert_eq!(wait(1, Some(503), ra, i, z), Duration::from_secs(3));
        // Only 429 and 503 carry a delay that counts.
        assert_eq!(wait(1, Some(502), ra, i, z), Duration::from_millis(100));
        let long = Some(Duration::from_secs(3600));
        assert_eq!(wait(1, Some(429), long, i, z), i);
    }
}
