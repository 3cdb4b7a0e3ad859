//! The OpenMetrics pass-through parser (an app answering
//! `application/openmetrics-text`) on arbitrary text: never panics, and
//! what it accepts re-renders into text 0.0.4 the pass-through parser
//! accepts again with the same series count.
#![no_main]

use libfuzzer_sys::fuzz_target;
use remora::exposition::write_passthrough;
use remora::targets::prom::{relabel, relabel_openmetrics, Kind, Served, ServedNames};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let labels = [("target".to_string(), "fuzz".to_string())];
    let served: ServedNames = [(
        "process_cpu_seconds_total".to_string(),
        Served { kind: Kind::Counter, help: "CPU".into() },
    )]
    .into_iter()
    .collect();
    if let Ok(r) = relabel_openmetrics(text, &labels, &served, 1000) {
        let mut out = Vec::new();
        write_passthrough(&mut out, &served, std::iter::once(r.families.as_slice()));
        let again = std::str::from_utf8(&out).expect("rendered text is UTF-8");
        let r2 = relabel(again, &[], &ServedNames::new(), 1000).expect("re-rendered text parses");
        assert_eq!(r2.series, r.series);
    }
});
