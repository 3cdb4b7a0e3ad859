//! Unit tests of the process collector.

use super::*;
use regex::Regex;
use std::fs;

const STAT: &str = "4242 (my (odd) app) S 1 4242 4242 0 -1 4194560 500 0 0 0 250 50 0 0 20 0 3 0 1000 104857600 2560 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n";

#[test]
fn parses_stat_with_odd_comm() {
    let s = parse_pid_stat(Path::new("stat"), STAT.as_bytes()).unwrap();
    assert_eq!(
        s,
        PidStat {
            utime: 250,
            stime: 50,
            threads: 3,
            starttime: 1000,
            vsize: 104857600,
        }
    );
    let reason = |text: &[u8]| match parse_pid_stat(Path::new("s"), text).unwrap_err() {
        HostError::Entry { reason, .. } => reason,
        e => panic!("{e}"),
    };
    assert_eq!(reason(b"1 (x) S 1 2"), Reason::MissingColumn);
    assert_eq!(reason(b"no paren"), Reason::MalformedLine);
    let huge = STAT.replace(" 250 50 ", " 18446744073709551616 50 ");
    assert_eq!(reason(huge.as_bytes()), Reason::Overflow);
    let bad = STAT.replace(" 250 50 ", " 25x 50 ");
    assert_eq!(reason(bad.as_bytes()), Reason::InvalidNumber);
    assert_eq!(reason(b"1 (x) S 1 \xff"), Reason::NonUtf8);
    // A command name that is not UTF-8 is fine.
    let mut raw = b"4242 (caf\xe9".to_vec();
    raw.extend_from_slice(&STAT.as_bytes()[STAT.find(')').unwrap()..]);
    assert_eq!(parse_pid_stat(Path::new("s"), &raw).unwrap().utime, 250);
}

#[test]
fn joins_cmdline() {
    let mut s = String::new();
    join_cmdline(b"uvicorn\0main:app\0--port\08000\0", &mut s);
    assert_eq!(s, "uvicorn main:app --port 8000");
    join_cmdline(b"nginx: worker process", &mut s);
    assert_eq!(s, "nginx: worker process");
    join_cmdline(
        b"nginx: master process nginx -g daemon off;\0\0\0\0",
        &mut s,
    );
    assert_eq!(s, "nginx: master process nginx -g daemon off;");
    join_cmdline(b"a\0\0b\0", &mut s);
    assert_eq!(s, "a  b");
    join_cmdline(b"\0\0", &mut s);
    assert_eq!(s, "");
}

fn fake_pid(proc: &Path, pid: u32, cmdline: &[u8], stat: &str, fds: usize) {
    let d = proc.join(pid.to_string());
    fs::create_dir_all(d.join("fd")).unwrap();
    fs::write(d.join("cmdline"), cmdline).unwrap();
    fs::write(d.join("stat"), stat).unwrap();
    let rss = stat.split(' ').nth(25).unwrap_or("0");
    fs::write(d.join("statm"), format!("9999 {rss} 5 1 0 10 0\n")).unwrap();
    for i in 0..fds {
        fs::write(d.join("fd").join(i.to_string()), "").unwrap();
    }
}

#[test]
fn sums_matching_processes() {
    let dir = tempfile::tempdir().unwrap();
    let proc = dir.path();
    fs::write(proc.join("uptime"), "2000.00 1.00\n").unwrap();
    fs::create_dir(proc.join("self")).unwrap();
    fake_pid(proc, 10, b"uvicorn\0main:app\0", STAT, 4);
    let stat2 = STAT.replace(" 1000 104857600 2560", " 5000 4096 10");
    fake_pid(proc, 11, b"uvicorn\0main:app\0--worker\0", &stat2, 2);
    fake_pid(proc, 12, b"postgres\0", STAT, 1);
    fake_pid(proc, 13, b"", STAT, 1); // kernel thread
    fake_pid(proc, 14, b"uvicorn\0main:app\0", "14 (uvicorn) S 1 2 3", 1); // truncated
                                                                           // Remora itself matches the regex but is skipped.
    fake_pid(proc, std::process::id(), b"uvicorn main:app\0", STAT, 1);

    let matchers = vec![
        ProcessMatcher {
            name: "api".into(),
            cmdline: Regex::new("^uvicorn .*main:app").unwrap(),
        },
        ProcessMatcher {
            name: "none".into(),
            cmdline: Regex::new("^nothing$").unwrap(),
        },
    ];
    let mut c = ProcessCollector::new(proc, &matchers);
    c.ticks = 100.0;
    c.page = 4096.0;
    let mut out = Vec::new();
    let mut t = Tally::default();
    c.collect(&mut out, &mut t).unwrap();
    assert_eq!(t.get(Reason::MissingColumn), 1);
    let names: Vec<&str> = out.iter().map(|f| &*f.name).collect();
    assert_eq!(
        names,
        vec![
            CPU_TIME,
            MEM_USAGE,
            MEM_VIRTUAL,
            THREADS,
            FDS,
            UPTIME,
            COUNT
        ]
    );
    let get = |f: usize, i: usize| {
        let s = &out[f].series[i];
        (s.attributes[0].value.as_str().to_string(), s.value)
    };
    // cpu: user 2 x 2.5 s, system 2 x 0.5 s.
    assert_eq!(get(0, 0), ("api".into(), 5.0));
    assert_eq!(out[0].series[0].attributes[1].value.as_str(), "user");
    assert_eq!(get(0, 1), ("api".into(), 1.0));
    assert_eq!(get(0, 2), ("none".into(), 0.0));
    assert_eq!(get(1, 0), ("api".into(), (2560.0 + 10.0) * 4096.0));
    assert_eq!(get(2, 0), ("api".into(), 104857600.0 + 4096.0));
    assert_eq!(get(3, 0), ("api".into(), 6.0));
    assert_eq!(get(4, 0), ("api".into(), 6.0));
    // Oldest started at tick 1000 = 10 s after boot.
    assert_eq!(out[5].series.len(), 1);
    assert_eq!(get(5, 0), ("api".into(), 1990.0));
    assert_eq!(get(6, 0), ("api".into(), 2.0));
    assert_eq!(get(6, 1), ("none".into(), 0.0));
}

#[test]
fn self_process_from_fake_tree() {
    let dir = tempfile::tempdir().unwrap();
    let proc = dir.path();
    fs::write(proc.join("stat"), "cpu 1 2 3 4\nbtime 1700000000\n").unwrap();
    fs::create_dir_all(proc.join("self/fd")).unwrap();
    for i in 0..3 {
        fs::write(proc.join("self/fd").join(i.to_string()), "").unwrap();
    }
    fs::write(proc.join("self/stat"), STAT).unwrap();
    fs::write(proc.join("self/statm"), "25600 2560 100 1 0 300 0\n").unwrap();
    fs::write(
        proc.join("self/limits"),
        "Limit                     Soft Limit           Hard Limit           Units\n\
Max open files            1024                 4096                 files\n",
    )
    .unwrap();
    let fams = self_process_families(proc).unwrap();
    let got: Vec<(&str, f64)> = fams.iter().map(|f| (&*f.name, f.series[0].value)).collect();
    let t = clock_ticks();
    assert_eq!(got[0], (SELF_CPU, 300.0 / t));
    assert_eq!(got[1], (SELF_RSS, 2560.0 * page_size()));
    assert_eq!(got[2], (SELF_VSIZE, 104857600.0));
    assert_eq!(got[3], (SELF_FDS, 3.0));
    assert_eq!(got[4], (SELF_MAX_FDS, 1024.0));
    assert_eq!(got[5], (SELF_START, 1_700_000_000.0 + 1000.0 / t));
    let spec_names: Vec<String> = self_process_specs().into_iter().map(|s| s.name).collect();
    assert_eq!(
        spec_names,
        got.iter().map(|(n, _)| n.to_string()).collect::<Vec<_>>()
    );
}

#[test]
fn self_process_real() {
    let fams = self_process_families(Path::new("/proc")).unwrap();
    assert_eq!(fams.len(), 6);
    assert!(fams[1].series[0].value > 0.0);
}
