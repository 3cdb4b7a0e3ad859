//! The value parsers on arbitrary strings: no panic, never NaN or infinite,
//! and a plain number means the same to every parser.
#![no_main]

use libfuzzer_sys::fuzz_target;
use remora::targets::value::{parse_bytes, parse_duration, parse_number, parse_timestamp};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let number = parse_number(s);
    let duration = parse_duration(s);
    let bytes = parse_bytes(s);
    let timestamp = parse_timestamp(s);
    for v in [number, duration, bytes, timestamp].into_iter().flatten() {
        assert!(v.is_finite(), "{s:?} gave {v}");
    }
    if let Some(n) = number {
        assert_eq!(duration, Some(n), "{s:?}");
        assert_eq!(bytes, Some(n), "{s:?}");
        assert_eq!(timestamp, Some(n), "{s:?}");
    }
});
