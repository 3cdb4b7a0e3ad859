use super::*;

fn close(a: Option<f64>, b: f64) -> bool {
    a.is_some_and(|a| (a - b).abs() <= 1e-9 * b.abs().max(1.0))
}

#[test]
fn numbers() {
    assert_eq!(parse_number("42"), Some(42.0));
    assert_eq!(parse_number(" -1.5 "), Some(-1.5));
    assert_eq!(parse_number("1.5e3"), Some(1500.0));
    assert_eq!(parse_number("+7"), Some(7.0));
    assert_eq!(parse_number(".5"), Some(0.5));
    assert_eq!(parse_number("1e308"), Some(1e308));
    for bad in [
        "", " ", "inf", "-inf", "NaN", "infinity", "1e400", "0x10", "1_000", "1,5", "e5", "-", ".",
        "1.2.3", "12abc", "abc",
    ] {
        assert_eq!(parse_number(bad), None, "{bad:?}");
    }
}

#[test]
fn durations_go_and_humantime_style() {
    let cases = [
        ("2h15m30s", 8130.0),
        ("150ms", 0.15),
        ("1.5s", 1.5),
        ("1d2h", 93600.0),
        ("1h", 3600.0),
        ("90m", 5400.0),
        ("0", 0.0),
        ("0s", 0.0),
        ("12.5", 12.5),
        ("-5s", -5.0),
        ("+5s", 5.0),
        ("-1.5h", -5400.0),
        ("300us", 0.0003),
        ("300µs", 0.0003),
        ("10ns", 1e-8),
        ("2w", 1_209_600.0),
        ("2h 15m", 8100.0),
        ("3 days", 259_200.0),
        ("1 hour 2 minutes", 3720.0),
        ("5 SEC", 5.0),
        ("1H30M", 5400.0),
        (" 7s ", 7.0),
    ];
    for (s, want) in cases {
        assert!(
            close(parse_duration(s), want),
            "{s:?} -> {:?}",
            parse_duration(s)
        );
    }
}

#[test]
fn durations_clock_and_iso() {
    let cases = [
        ("2:15:30", 8130.0),
        ("0:00:01.500000", 1.5),
        ("3 days, 2:15:30", 3.0 * 86400.0 + 8130.0),
        ("1 day, 0:00:00", 86400.0),
        ("-1 day, 23:59:59", -1.0),
        ("1.02:15:30", 86400.0 + 8130.0),
        ("-00:00:05", -5.0),
        ("123:00:00", 123.0 * 3600.0),
        ("PT2H15M30S", 8130.0),
        ("P1DT2H", 93600.0),
        ("PT0.5S", 0.5),
        ("PT1,5S", 1.5),
        ("P2W", 1_209_600.0),
        ("-PT5S", -5.0),
        ("pt1m", 60.0),
    ];
    for (s, want) in cases {
        assert!(
            close(parse_duration(s), want),
            "{s:?} -> {:?}",
            parse_duration(s)
        );
    }
}

#[test]
fn durations_garbage() {
    for bad in [
        "",
        "s",
        "h1",
        "2h30",
        "5x",
        "1y",
        "1mo",
        "P1Y",
        "P1M",
        "PT",
        "P",
        "PT1H1H",
        "PT1M1H",
        "P1H",
        "1:2",
        "1:60:00",
        "1:00:60",
        "1:0:00",
        "a:bb:cc",
        "2 parsecs",
        "--5s",
        "inf",
        "NaN",
        "nans",
        "1.2.3s",
        "1e3s",
        "5 days, 1:00",
        "x day, 1:00:00",
        "1:00:00, 2 days",
    ] {
        assert_eq!(parse_duration(bad), None, "{bad:?}");
    }
}

#[test]
fn durations_huge() {
    assert_eq!(parse_duration("1e308"), Some(1e308));
    // Finite digits, infinite product.
    let long = format!("{}h", "9".repeat(400));
    assert_eq!(parse_duration(&long), None);
    assert!(close(
        parse_duration("99999999999999999999h"),
        1e20 * 3600.0
    ));
}

#[test]
fn bytes() {
    let cases = [
        ("10.5GB", 10.5e9),
        ("512MiB", 512.0 * 1_048_576.0),
        ("4MiB", 4_194_304.0),
        ("1.5 kB", 1500.0),
        ("1024", 1024.0),
        ("10Gi", 10.0 * 1_073_741_824.0),
        ("500M", 5e8),
        ("2k", 2000.0),
        ("2K", 2000.0),
        ("2Ki", 2048.0),
        ("1TB", 1e12),
        ("1Ti", 1_099_511_627_776.0),
        ("1EB", 1e18),
        ("1Ei", 1_152_921_504_606_846_976.0),
        ("3B", 3.0),
        ("3 bytes", 3.0),
        ("1e3", 1000.0),
        ("1e3kB", 1e6),
        ("0", 0.0),
        ("-1", -1.0),
        ("10.50gb", 10.5e9),
        ("512mib", 512.0 * 1_048_576.0),
        ("  7 MB ", 7e6),
    ];
    for (s, want) in cases {
        assert!(close(parse_bytes(s), want), "{s:?} -> {:?}", parse_bytes(s));
    }
    for bad in [
        "",
        "GB",
        "10 XB",
        "500m",
        "1.2.3MB",
        "10GB free",
        "inf",
        "NaN",
        "1e999",
    ] {
        assert_eq!(parse_bytes(bad), None, "{bad:?}");
    }
}

#[test]
fn timestamps() {
    let cases = [
        ("2026-02-16T19:15:00.000Z", 1_771_269_300.0),
        ("2026-02-16T19:15:00Z", 1_771_269_300.0),
        ("2026-02-16T21:15:00+02:00", 1_771_269_300.0),
        ("2026-02-16T14:15:00-0500", 1_771_269_300.0),
        ("2026-02-16T19:15:00", 1_771_269_300.0),
        ("2026-02-16 19:15:00.25z", 1_771_269_300.25),
        ("2026-02-16", 1_771_200_000.0),
        ("1970-01-01T00:00:00Z", 0.0),
        ("1969-12-31T23:59:59Z", -1.0),
        ("2000-02-29T00:00:00Z", 951_782_400.0),
        ("2016-12-31T23:59:60Z", 1_483_228_800.0),
        ("1657568506", 1_657_568_506.0),
        ("1657568506.5", 1_657_568_506.5),
    ];
    for (s, want) in cases {
        assert!(
            close(parse_timestamp(s), want),
            "{s:?} -> {:?}",
            parse_timestamp(s)
        );
    }
    let frac = parse_timestamp("2026-02-16T19:15:00.123456Z").unwrap();
    assert!((frac - 1_771_269_300.123456).abs() < 1e-5);
    for bad in [
        "",
        "yesterday",
        "2026-13-01",
        "2026-02-30",
        "2025-02-29",
        "2026-02-16T25:00:00Z",
        "2026-02-16T19:60:00Z",
        "2026-02-16T19:15Z",
        "2026-02-16T19:15:00.Z",
        "2026-02-16T19:15:00+2",
        "2026-02-16T19:15:00+24:00",
        "2026-02-16T19:15:00ZZ",
        "26-02-16",
        "2026/02/16",
        "inf",
    ] {
        assert_eq!(parse_timestamp(bad), None, "{bad:?}");
    }
}
