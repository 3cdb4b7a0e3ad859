//! The binary on fixture trees (`tests/fixtures/host/{v1,v2}`): `remora once`
//! with `--path.procfs`, `--path.sysfs` and `--path.rootfs` serves exactly the
//! values the fixture files imply, odd lines included (each dropped and counted
//! in `remora_collector_errors_total`), and sizes file systems at mount points
//! resolved under the root file system.
//!
//! Every series served is compared, by name, labels and value; only the
//! series the files do not determine (build info, durations, reload state) are
//! left out, by name.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_remora");

type Labels = BTreeMap<String, String>;
type Exposition = BTreeMap<(String, Labels), f64>;

/// Parses the Prometheus text format into (name, labels) -> value; a series
/// served twice is an error.
fn parse_exposition(text: &str) -> Exposition {
    let mut out = Exposition::new();
    for line in text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let (series, value) = line.rsplit_once(' ').expect(line);
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().expect(line),
        };
        let (name, labels) = match series.split_once('{') {
            None => (series.to_string(), Labels::new()),
            Some((name, rest)) => {
                let body = rest.strip_suffix('}').expect(line);
                (name.to_string(), parse_labels(body, line))
            }
        };
        let key = (name, labels);
        assert!(!out.contains_key(&key), "served twice: {line}");
        out.insert(key, value);
    }
    out
}

fn parse_labels(body: &str, line: &str) -> Labels {
    let mut labels = Labels::new();
    let mut chars = body.chars().peekable();
    loop {
        let key: String = chars.by_ref().take_while(|&c| c != '=').collect();
        if key.is_empty() {
            break;
        }
        assert_eq!(chars.next(), Some('"'), "{line}");
        let mut value = String::new();
        loop {
            match chars.next().expect(line) {
                '\\' => match chars.next().expect(line) {
                    'n' => value.push('\n'),
                    c => value.push(c),
                },
                '"' => break,
                c => value.push(c),
            }
        }
        labels.insert(key, value);
        match chars.next() {
            Some(',') => continue,
            None => break,
            Some(c) => panic!("unexpected {c:?} in {line}"),
        }
    }
    labels
}

fn key(name: &str, labels: &[(&str, &str)]) -> (String, Labels) {
    (
        name.to_string(),
        labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

fn fixture(tree: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/host")
        .join(tree)
}

/// `remora once` on a fixture tree; returns the parsed exposition.
fn once(tree: &Path) -> Exposition {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.yaml");
    std::fs::write(
        &cfg,
        "host:\n  processes:\n    - {name: api, cmdline: \"^uvicorn .*main:app\"}\n",
    )
    .unwrap();
    let arg = |flag: &str, p: &Path| format!("--{flag}={}", p.display());
    let out = Command::new(BIN)
        .arg("once")
        .arg(arg("config.file", &cfg))
        .arg(arg("path.procfs", &tree.join("proc")))
        .arg(arg("path.sysfs", &tree.join("sys")))
        .arg(arg("path.rootfs", &tree.join("root")))
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "{}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    parse_exposition(&text)
}

fn sysconf(name: libc::c_int) -> f64 {
    // SAFETY: sysconf has no preconditions.
    unsafe { libc::sysconf(name) as f64 }
}

/// Everything the fixture files imply, except file systems, memory, the
/// container and per-tree collector errors.
fn expected_common() -> Exposition {
    let tck = sysconf(libc::_SC_CLK_TCK);
    let page = sysconf(libc::_SC_PAGESIZE);
    let mut e = Exposition::new();
    let mut put = |name: &str, labels: &[(&str, &str)], v: f64| {
        e.insert(key(name, labels), v);
    };
    // /proc/stat: cpu0 and cpu1; cpu2 (truncated), cpu3 (not a number), cpu4
    // (u64 overflow) and the second cpu0 line are dropped.
    let cpus: [(&str, [f64; 7]); 2] = [
        ("0", [1000.0, 10.0, 300.0, 20000.0, 100.0, 50.0, 5.0]),
        ("1", [2000.0, 10.0, 400.0, 20000.0, 200.0, 50.0, 0.0]),
    ];
    let modes = [
        "user",
        "nice",
        "system",
        "idle",
        "iowait",
        "interrupt",
        "steal",
    ];
    for (cpu, ticks) in cpus {
        for (mode, t) in modes.iter().zip(ticks) {
            put(
                "system_cpu_time_seconds_total",
                &[("cpu_logical_number", cpu), ("cpu_mode", mode)],
                t / tck,
            );
        }
    }
    put("system_cpu_logical_count", &[], 2.0);
    put("system_cpu_load_average_1m", &[], 0.75);
    put("system_cpu_load_average_5m", &[], 0.5);
    put("system_cpu_load_average_15m", &[], 0.25);
    put("system_uptime_seconds", &[], 86400.5);
    // /proc/net/dev: lo excluded; the alias ibr10:30 kept; eth1 (truncated),
    // eth2 (overflow) and the non-UTF-8 name dropped; eth4's counter touches the colon.
    let ifaces: [(&str, [f64; 4], [f64; 4]); 3] = [
        (
            "eth0",
            [306504844.0, 15457.0, 1.0, 2.0],
            [1089615.0, 12599.0, 3.0, 4.0],
        ),
        (
            "ibr10:30",
            [5000.0, 50.0, 5.0, 6.0],
            [7000.0, 70.0, 7.0, 8.0],
        ),
        (
            "eth4",
            [12345678901.0, 99.0, 0.0, 0.0],
            [42.0, 43.0, 0.0, 0.0],
        ),
    ];
    let names = [
        "system_network_io_bytes_total",
        "system_network_packet_count_total",
        "system_network_errors_total",
        "system_network_packet_dropped_total",
    ];
    for (iface, rx, tx) in ifaces {
        for (dir, vals) in [("receive", rx), ("transmit", tx)] {
            for (n, v) in names.iter().zip(vals) {
                put(
                    n,
                    &[
                        ("network_interface_name", iface),
                        ("network_io_direction", dir),
                    ],
                    v,
                );
            }
        }
    }
    // The app process 7777777; 7777778 (truncated stat) is dropped.
    let api = [("process_name", "api")];
    put(
        "process_cpu_time_seconds_total",
        &[("cpu_mode", "user"), ("process_name", "api")],
        1500.0 / tck,
    );
    put(
        "process_cpu_time_seconds_total",
        &[("cpu_mode", "system"), ("process_name", "api")],
        500.0 / tck,
    );
    put("process_memory_usage_bytes", &api, 2048.0 * page);
    put("process_memory_virtual_bytes", &api, 104857600.0);
    put("process_thread_count", &api, 4.0);
    put("process_unix_file_descriptor_count", &api, 5.0);
    put("process_uptime_seconds", &api, 86400.5 - 100000.0 / tck);
    put("process_count", &api, 1.0);
    // remora's own process, from <procfs>/self and btime.
    put("process_cpu_seconds_total", &[], 400.0 / tck);
    put("process_resident_memory_bytes", &[], 3000.0 * page);
    put("process_virtual_memory_bytes", &[], 209715200.0);
    put("process_open_fds", &[], 3.0);
    put("process_max_fds", &[], 65536.0);
    put(
        "process_start_time_seconds",
        &[],
        1_700_000_000.0 + 5000.0 / tck,
    );
    for c in [
        "cpu",
        "memory",
        "load",
        "filesystem",
        "network",
        "uptime",
        "container",
        "process",
    ] {
        put("remora_collector_up", &[("collector", c)], 1.0);
    }
    for (c, reason) in [
        ("cpu", "duplicate"),
        ("cpu", "invalid_number"),
        ("cpu", "missing_column"),
        ("cpu", "overflow"),
        ("network", "missing_column"),
        ("network", "non_utf8"),
        ("network", "overflow"),
        ("filesystem", "missing_column"),
        ("filesystem", "non_utf8"),
        ("process", "missing_column"),
    ] {
        put(
            "remora_collector_errors_total",
            &[("collector", c), ("reason", reason)],
            1.0,
        );
    }
    e
}

/// Series the files do not determine.
const NOT_FROM_FILES: [&str; 4] = [
    "remora_build_info",
    "remora_collector_duration_seconds",
    "remora_config_last_reload_successful",
    "remora_config_last_reload_success_timestamp_seconds",
];

/// (used, free, reserved, total) bytes of a directory, as remora computes them.
fn statvfs(p: &Path) -> [u64; 4] {
    let c = CString::new(p.to_str().unwrap()).unwrap();
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: c is NUL-terminated, st a valid out-pointer.
    assert_eq!(unsafe { libc::statvfs(c.as_ptr(), &mut st) }, 0);
    #[allow(clippy::useless_conversion)]
    let (frsize, blocks, bfree, bavail) = (
        u64::from(st.f_frsize),
        u64::from(st.f_blocks),
        u64::from(st.f_bfree),
        u64::from(st.f_bavail),
    );
    let bfree = bfree.min(blocks);
    let bavail = bavail.min(bfree);
    [
        (blocks - bfree) * frsize,
        bavail * frsize,
        (bfree - bavail) * frsize,
        blocks * frsize,
    ]
}

/// The mounts of the fixtures' `mounts` that are served: the proc mount is
/// excluded by type, `/etc/hosts` is a file, `/not/there` does not exist,
/// the truncated and non-UTF-8 lines are dropped. `nfs4` is no longer excluded.
const MOUNTS: [(&str, &str, &str); 4] = [
    ("/dev/vda1", "/", "ext4"),
    ("/dev/vdb", "/data", "xfs"),
    ("server:/export", "/mnt/share", "nfs4"),
    ("/dev/vdc", "/mnt/my disk", "ext4"),
];

/// Checks and removes the file system series: each state lies between
/// statvfs of the resolved directory before and after the run, give or take
/// 256 MiB (other processes write to the same disk), the states add up to the size, and the
/// utilization is used / (used + free) of the values served.
fn check_filesystems(served: &mut Exposition, root: &Path, before: &[[u64; 4]]) -> bool {
    let mut ok = true;
    for ((dev, mp, ty), before) in MOUNTS.iter().zip(before) {
        let after = statvfs(&root.join(mp.trim_start_matches('/')));
        let base = [
            ("system_device", *dev),
            ("system_filesystem_mountpoint", *mp),
            ("system_filesystem_type", *ty),
        ];
        let mut got = [0.0; 3];
        for (i, state) in ["used", "free", "reserved"].iter().enumerate() {
            let mut labels = base.to_vec();
            labels.push(("system_filesystem_state", state));
            let v = served
                .remove(&key("system_filesystem_usage_bytes", &labels))
                .unwrap_or_else(|| panic!("no {state} for {mp}"));
            // Other processes write to the same disk while `once` runs, and
            // not always in one direction: allow a window around the two
            // readings that is small beside what a mix-up of states, block
            // sizes or mounts would give (gigabytes on any real disk).
            let slack = 256.0 * 1024.0 * 1024.0;
            let (lo, hi) = (before[i].min(after[i]), before[i].max(after[i]));
            ok &= (lo as f64 - slack..=hi as f64 + slack).contains(&v);
            got[i] = v;
        }
        assert_eq!(got.iter().sum::<f64>(), after[3] as f64, "{mp}: size");
        let util = served
            .remove(&key("system_filesystem_utilization_ratio", &base))
            .unwrap_or_else(|| panic!("no utilization for {mp}"));
        assert!(
            (util - got[0] / (got[0] + got[1])).abs() < 1e-12,
            "{mp}: {util}"
        );
    }
    ok
}

fn assert_same(served: &Exposition, expected: &Exposition) {
    for (k, v) in expected {
        match served.get(k) {
            None => panic!("missing {k:?} (expected {v})"),
            Some(s) => assert!(
                (s - v).abs() <= 1e-9 * v.abs().max(1.0),
                "{k:?}: served {s}, files imply {v}"
            ),
        }
    }
    for k in served.keys() {
        assert!(expected.contains_key(k), "served but not implied: {k:?}");
    }
}

/// Runs `once` until a run falls between two identical-enough statvfs
/// readings (bounded), then compares everything.
fn check_tree(tree: &Path, expected: Exposition) {
    let root = tree.join("root");
    for attempt in 0..20 {
        let before: Vec<[u64; 4]> = MOUNTS
            .iter()
            .map(|(_, mp, _)| statvfs(&root.join(mp.trim_start_matches('/'))))
            .collect();
        let mut served = once(tree);
        for name in NOT_FROM_FILES {
            served.retain(|(n, _), _| n != name);
        }
        if !check_filesystems(&mut served, &root, &before) {
            eprintln!("attempt {attempt}: the disk changed under the run; again");
            continue;
        }
        assert_same(&served, &expected);
        return;
    }
    panic!("file system sizes never matched statvfs of the fixture directories");
}

#[test]
fn once_on_a_cgroup_v2_tree_with_memavailable_serves_what_the_files_imply() {
    let mut e = expected_common();
    let mut put = |name: &str, labels: &[(&str, &str)], v: f64| {
        e.insert(key(name, labels), v);
    };
    // meminfo with MemAvailable: used = MemTotal - MemAvailable.
    let kib = 1024.0;
    let (total, free, avail, buffers, cached) =
        (8e6 * kib, 1e6 * kib, 5e6 * kib, 2e5 * kib, 3e6 * kib);
    for (state, v) in [
        ("used", total - avail),
        ("free", free),
        ("buffers", buffers),
        ("cached", cached),
    ] {
        put(
            "system_memory_usage_bytes",
            &[("system_memory_state", state)],
            v,
        );
        put(
            "system_memory_utilization_ratio",
            &[("system_memory_state", state)],
            v / total,
        );
    }
    put("system_memory_limit_bytes", &[], total);
    put("system_memory_linux_available_bytes", &[], avail);
    put(
        "system_paging_usage_bytes",
        &[("system_paging_state", "used")],
        5e5 * kib,
    );
    put(
        "system_paging_usage_bytes",
        &[("system_paging_state", "free")],
        1.5e6 * kib,
    );
    // cgroup v2 at <sysfs>/fs/cgroup/kubepods/pod1/abc.
    put("container_cpu_time_seconds_total", &[], 2.5);
    put("container_cpu_throttled_time_seconds_total", &[], 1.5);
    put("container_cpu_limit", &[], 0.5);
    put("container_memory_usage_bytes", &[], 104857600.0);
    put("container_memory_limit_bytes", &[], 268435456.0);
    put(
        "container_memory_working_set_bytes",
        &[],
        104857600.0 - 30000000.0,
    );
    // The odd line of <procfs>/self/cgroup.
    put(
        "remora_collector_errors_total",
        &[("collector", "container"), ("reason", "malformed_line")],
        1.0,
    );
    check_tree(&fixture("v2"), e);
}

#[test]
fn once_on_a_cgroup_v1_tree_without_memavailable_serves_what_the_files_imply() {
    let mut e = expected_common();
    let mut put = |name: &str, labels: &[(&str, &str)], v: f64| {
        e.insert(key(name, labels), v);
    };
    // meminfo without MemAvailable: used = MemTotal - MemFree - Buffers - Cached;
    // the line without a colon and the second Cached line are dropped.
    let kib = 1024.0;
    let (total, free, buffers, cached) = (4e6 * kib, 5e5 * kib, 1e5 * kib, 1e6 * kib);
    for (state, v) in [
        ("used", total - free - buffers - cached),
        ("free", free),
        ("buffers", buffers),
        ("cached", cached),
    ] {
        put(
            "system_memory_usage_bytes",
            &[("system_memory_state", state)],
            v,
        );
        put(
            "system_memory_utilization_ratio",
            &[("system_memory_state", state)],
            v / total,
        );
    }
    put("system_memory_limit_bytes", &[], total);
    put(
        "system_paging_usage_bytes",
        &[("system_paging_state", "used")],
        0.0,
    );
    put(
        "system_paging_usage_bytes",
        &[("system_paging_state", "free")],
        0.0,
    );
    for reason in ["malformed_line", "duplicate"] {
        put(
            "remora_collector_errors_total",
            &[("collector", "memory"), ("reason", reason)],
            1.0,
        );
    }
    // cgroup v1 (cpu,cpuacct and memory) under <sysfs>/fs/cgroup; the memory
    // limit is v1's "unlimited" sentinel, so no limit series.
    put("container_cpu_time_seconds_total", &[], 3.0);
    put("container_cpu_throttled_time_seconds_total", &[], 0.25);
    put("container_cpu_limit", &[], 1.5);
    put("container_memory_usage_bytes", &[], 2000000.0);
    put("container_memory_working_set_bytes", &[], 1500000.0);
    check_tree(&fixture("v1"), e);
}

#[test]
fn exposition_parser_reads_names_labels_and_values() {
    let e = parse_exposition(
        "# HELP x y\nx 1\ny{a=\"1\",b=\"q\\\"uote\\\\ \\n\"} 2.5e+09\nz{k=\"a,b=c\"} +Inf\n",
    );
    assert_eq!(e[&key("x", &[])], 1.0);
    assert_eq!(e[&key("y", &[("a", "1"), ("b", "q\"uote\\ \n")])], 2.5e9);
    assert_eq!(e[&key("z", &[("k", "a,b=c")])], f64::INFINITY);
}

/// The server with the same flags: every host poll reads the fixture tree,
/// and `remora_collector_errors_total` is cumulative (it grows at each poll
/// that meets the same odd lines).
#[test]
fn the_server_reads_the_roots_and_counts_odd_lines_cumulatively() {
    use std::io::{Read, Write};
    use std::time::{Duration, Instant};

    let tree = fixture("v2");
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.yaml");
    std::fs::write(
        &cfg,
        "global: {interval: 1s}\nhost: {collectors: [network, container]}\n",
    )
    .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let arg = |flag: &str, p: &Path| format!("--{flag}={}", p.display());
    let mut child = Command::new(BIN)
        .arg(arg("config.file", &cfg))
        .arg(arg("path.procfs", &tree.join("proc")))
        .arg(arg("path.sysfs", &tree.join("sys")))
        .arg(arg("path.rootfs", &tree.join("root")))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let scrape = || -> Option<Exposition> {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
        s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").ok()?;
        let mut buf = String::new();
        s.read_to_string(&mut buf).ok()?;
        let (head, body) = buf.split_once("\r\n\r\n")?;
        head.contains(" 200 ").then(|| parse_exposition(body))
    };
    let overflow = key(
        "remora_collector_errors_total",
        &[("collector", "network"), ("reason", "overflow")],
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = None;
    let result = loop {
        if let Some(e) = scrape() {
            if e.get(&overflow).copied().unwrap_or(0.0) >= 3.0 {
                break Ok(e);
            }
            last = Some(e);
        }
        if Instant::now() > deadline {
            break Err(last);
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let _ = child.kill();
    let _ = child.wait();
    let e = result.unwrap_or_else(|last| panic!("the counter never reached 3: {last:?}"));
    let eth4 = key(
        "system_network_io_bytes_total",
        &[
            ("network_interface_name", "eth4"),
            ("network_io_direction", "receive"),
        ],
    );
    assert_eq!(e[&eth4], 12345678901.0);
    assert_eq!(e[&key("container_cpu_limit", &[])], 0.5);
    assert_eq!(
        e[&key("remora_collector_up", &[("collector", "network")])],
        1.0
    );
}
