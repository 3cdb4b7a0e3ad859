//! Truth tests: what the host collectors report against what the kernel says
//! at the same moment, on the machine running the tests.
//!
//! Counters are bracketed exactly (kernel value read before <= reported <=
//! kernel value read after). Gauges are bracketed the same way with a small
//! slack, and retried while the machine is busy: a check inside [`eventually`]
//! fails by returning an error, never by panicking, so every check is retried.

use std::collections::HashMap;
use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use regex::Regex;
use remora::config::{CollectorName, HostConfig, ProcessMatcher};
use remora::host::{self, CollectorReport, HostCollectors, Roots};
use remora::model::Family;

const MIB: f64 = 1024.0 * 1024.0;

fn config(collectors: Vec<CollectorName>) -> HostConfig {
    HostConfig {
        enabled: true,
        interval: Duration::from_secs(15),
        collectors,
        mount_points_exclude: Regex::new("^/(dev|proc|sys|run)($|/)").unwrap(),
        fs_types_exclude: Regex::new(
            "^(autofs|binfmt_misc|bpf|cgroup2?|configfs|debugfs|devpts|devtmpfs|fusectl|hugetlbfs|mqueue|nsfs|overlay|proc|pstore|rpc_pipefs|securityfs|selinuxfs|squashfs|sysfs|tracefs)$",
        )
        .unwrap(),
        devices_exclude: Regex::new("^lo$").unwrap(),
        processes: vec![],
        app_container: None,
    }
}

fn poll_one(h: &mut HostCollectors, collector: &str) -> Vec<Family> {
    let reports: Vec<CollectorReport> = h.poll();
    let r = reports
        .into_iter()
        .find(|r| r.collector == collector)
        .unwrap_or_else(|| panic!("no report for {collector}"));
    if let Err(e) = &r.result {
        panic!("collector {collector} failed: {e}");
    }
    r.families
}

fn family<'a>(fams: &'a [Family], name: &str) -> &'a Family {
    fams.iter()
        .find(|f| &*f.name == name)
        .unwrap_or_else(|| panic!("no family {name}"))
}

fn maybe_family<'a>(fams: &'a [Family], name: &str) -> Option<&'a Family> {
    fams.iter().find(|f| &*f.name == name)
}

/// The value of the series whose attributes include all of `attrs`.
fn value(f: &Family, attrs: &[(&str, &str)]) -> Option<f64> {
    f.series
        .iter()
        .find(|s| {
            attrs.iter().all(|(k, v)| {
                s.attributes
                    .iter()
                    .any(|kv| kv.key.as_str() == *k && kv.value.as_str() == *v)
            })
        })
        .map(|s| s.value)
}

fn within(v: f64, a: f64, b: f64, slack: f64) -> bool {
    v >= a.min(b) - slack && v <= a.max(b) + slack
}

/// Runs `attempt` until it returns Ok, for at least 5 tries and 10 s; then
/// panics with the last failure. `attempt` reports a failed check as an Err
/// (see [`check!`]), so every check is retried, none panics halfway.
fn eventually(mut attempt: impl FnMut() -> Result<(), String>) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut tries = 0;
    loop {
        let err = match attempt() {
            Ok(()) => return,
            Err(e) => e,
        };
        tries += 1;
        if tries >= 5 && Instant::now() >= deadline {
            panic!("still failing after {tries} tries: {err}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Inside an [`eventually`] attempt: fails the attempt unless `cond` holds.
macro_rules! check {
    ($cond:expr, $($msg:tt)+) => {
        let holds: bool = $cond;
        if !holds {
            return Err(format!($($msg)+));
        }
    };
}

/// [`family`] for an attempt.
fn fam<'a>(fams: &'a [Family], name: &str) -> Result<&'a Family, String> {
    maybe_family(fams, name).ok_or_else(|| format!("no family {name}"))
}

/// [`value`] for an attempt.
fn val(f: &Family, attrs: &[(&str, &str)]) -> Result<f64, String> {
    value(f, attrs).ok_or_else(|| format!("no {} series with {attrs:?}", f.name))
}

/// The value of a family's only series, for an attempt.
fn only(fams: &[Family], name: &str) -> Result<f64, String> {
    fam(fams, name)?
        .series
        .first()
        .map(|s| s.value)
        .ok_or_else(|| format!("{name} has no series"))
}

/// [`poll_one`] for an attempt.
fn try_poll_one(h: &mut HostCollectors, collector: &str) -> Result<Vec<Family>, String> {
    let r = h
        .poll()
        .into_iter()
        .find(|r| r.collector == collector)
        .ok_or_else(|| format!("no report for {collector}"))?;
    r.result
        .map(|()| r.families)
        .map_err(|e| format!("collector {collector} failed: {e}"))
}

fn clk_tck() -> f64 {
    // SAFETY: sysconf has no preconditions.
    unsafe { libc::sysconf(libc::_SC_CLK_TCK) as f64 }
}

fn read(p: impl AsRef<Path>) -> String {
    std::fs::read_to_string(p.as_ref()).unwrap_or_else(|e| panic!("{}: {e}", p.as_ref().display()))
}

/// `/proc/stat` per-CPU ticks: cpu -> [user nice system idle iowait irq+softirq steal].
fn proc_stat() -> HashMap<String, [u64; 7]> {
    read("/proc/stat")
        .lines()
        .filter(|l| l.starts_with("cpu") && !l.starts_with("cpu "))
        .map(|l| {
            let mut it = l.split_whitespace();
            let cpu = it.next().unwrap().trim_start_matches("cpu").to_string();
            let f: Vec<u64> = it.map(|x| x.parse().unwrap()).collect();
            (cpu, [f[0], f[1], f[2], f[3], f[4], f[5] + f[6], f[7]])
        })
        .collect()
}

#[test]
fn cpu_matches_proc_stat() {
    let mut h = HostCollectors::new(&config(vec![CollectorName::Cpu]), Roots::default());
    let before = proc_stat();
    let fams = poll_one(&mut h, "cpu");
    let after = proc_stat();
    let time = family(&fams, "system.cpu.time");
    let modes = [
        "user",
        "nice",
        "system",
        "idle",
        "iowait",
        "interrupt",
        "steal",
    ];
    let tck = clk_tck();
    for (cpu, b) in &before {
        for (m, mode) in modes.iter().enumerate() {
            let got = value(time, &[("cpu.logical_number", cpu), ("cpu.mode", mode)])
                .unwrap_or_else(|| panic!("no cpu {cpu} {mode}"));
            let ticks = (got * tck).round() as u64;
            let a = after[cpu][m];
            assert!(
                b[m] <= ticks && ticks <= a,
                "cpu{cpu} {mode}: {ticks} not in [{}, {a}]",
                b[m]
            );
        }
    }
    assert_eq!(time.series.len(), before.len() * modes.len());
    let count = family(&fams, "system.cpu.logical.count").series[0].value;
    assert_eq!(count, before.len() as f64);
    // No utilization on the first poll; on the second, fractions adding up to 1 per CPU.
    assert!(maybe_family(&fams, "system.cpu.utilization").is_none());
    // At least one CPU must be checked: poll again until one has ticked (this
    // thread keeps a CPU busy between polls), with a deadline.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut checked = 0;
    while checked == 0 {
        assert!(
            Instant::now() < deadline,
            "no CPU utilization to check after 20 s of polls"
        );
        let spin = Instant::now();
        while spin.elapsed() < Duration::from_millis(100) {
            std::hint::black_box(spin.elapsed());
        }
        let fams = poll_one(&mut h, "cpu");
        let Some(u) = maybe_family(&fams, "system.cpu.utilization") else {
            continue;
        };
        for cpu in before.keys() {
            let parts: Vec<f64> = modes
                .iter()
                .filter_map(|m| value(u, &[("cpu.logical_number", cpu), ("cpu.mode", m)]))
                .collect();
            if parts.is_empty() {
                continue; // no tick on this CPU since the last poll
            }
            assert_eq!(parts.len(), modes.len(), "cpu{cpu}: {parts:?}");
            assert!(parts.iter().all(|p| (0.0..=1.0).contains(p)));
            let sum: f64 = parts.iter().sum();
            assert!(
                (sum - 1.0).abs() < 1e-9,
                "cpu{cpu} utilization sums to {sum}"
            );
            checked += 1;
        }
    }
}

fn meminfo() -> HashMap<String, f64> {
    read("/proc/meminfo")
        .lines()
        .filter_map(|l| {
            let (k, rest) = l.split_once(':')?;
            let mut it = rest.split_whitespace();
            let v: f64 = it.next()?.parse().ok()?;
            let mult = if it.next() == Some("kB") { 1024.0 } else { 1.0 };
            Some((k.to_string(), v * mult))
        })
        .collect()
}

#[test]
fn memory_matches_meminfo() {
    let mut h = HostCollectors::new(&config(vec![CollectorName::Memory]), Roots::default());
    eventually(|| {
        let b = meminfo();
        let fams = try_poll_one(&mut h, "memory")?;
        let a = meminfo();
        let usage = fam(&fams, "system.memory.usage")?;
        let checks = [
            (
                "used",
                b["MemTotal"] - b["MemAvailable"],
                a["MemTotal"] - a["MemAvailable"],
            ),
            ("free", b["MemFree"], a["MemFree"]),
            ("buffers", b["Buffers"], a["Buffers"]),
            ("cached", b["Cached"], a["Cached"]),
        ];
        for (state, vb, va) in checks {
            let got = val(usage, &[("system.memory.state", state)])?;
            check!(
                within(got, vb, va, MIB),
                "memory {state}: {got} not within [{vb}, {va}] +- 1 MiB"
            );
        }
        let limit = only(&fams, "system.memory.limit")?;
        check!(
            limit == a["MemTotal"],
            "limit {limit} vs MemTotal {}",
            a["MemTotal"]
        );
        let avail = only(&fams, "system.memory.linux.available")?;
        check!(
            within(avail, b["MemAvailable"], a["MemAvailable"], MIB),
            "available {avail}"
        );
        let util = fam(&fams, "system.memory.utilization")?;
        let used = val(usage, &[("system.memory.state", "used")])?;
        let u = val(util, &[("system.memory.state", "used")])?;
        check!((u - used / a["MemTotal"]).abs() < 1e-12, "utilization {u}");
        let paging = fam(&fams, "system.paging.usage")?;
        let free = val(paging, &[("system.paging.state", "free")])?;
        let pused = val(paging, &[("system.paging.state", "used")])?;
        check!(
            free + pused == a["SwapTotal"],
            "swap {free} + {pused} vs SwapTotal {}",
            a["SwapTotal"]
        );
        check!(
            within(free, b["SwapFree"], a["SwapFree"], MIB),
            "swap free {free}"
        );
        Ok(())
    });
}

#[test]
fn load_and_uptime_match_proc() {
    let cfg = config(vec![CollectorName::Load, CollectorName::Uptime]);
    let mut h = HostCollectors::new(&cfg, Roots::default());
    let loadavg = || -> Vec<f64> {
        read("/proc/loadavg")
            .split_whitespace()
            .take(3)
            .map(|x| x.parse().unwrap())
            .collect()
    };
    let uptime = || -> f64 {
        read("/proc/uptime")
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    eventually(|| {
        let (lb, ub) = (loadavg(), uptime());
        let reports = h.poll();
        let (la, ua) = (loadavg(), uptime());
        let fams: Vec<Family> = reports.into_iter().flat_map(|r| r.families).collect();
        for (i, n) in ["1m", "5m", "15m"].iter().enumerate() {
            let got = only(&fams, &format!("system.cpu.load_average.{n}"))?;
            check!(
                within(got, lb[i], la[i], 0.0),
                "load {n}: {got} not in [{}, {}]",
                lb[i],
                la[i]
            );
        }
        let up = only(&fams, "system.uptime")?;
        check!(ub <= up && up <= ua, "uptime {up} not in [{ub}, {ua}]");
        Ok(())
    });
}

/// (used, free, reserved) in bytes from statvfs.
fn statvfs(mp: &str) -> (f64, f64, f64) {
    let c = CString::new(mp).unwrap();
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: valid C string and out-pointer.
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    assert_eq!(rc, 0, "statvfs {mp}");
    let unit = if st.f_frsize > 0 {
        st.f_frsize
    } else {
        st.f_bsize
    } as f64;
    let (blocks, bfree, bavail) = (st.f_blocks as f64, st.f_bfree as f64, st.f_bavail as f64);
    (
        (blocks - bfree) * unit,
        bavail * unit,
        (bfree - bavail) * unit,
    )
}

#[test]
fn filesystem_matches_statvfs() {
    let cfg = config(vec![CollectorName::Filesystem]);
    let mut h = HostCollectors::new(&cfg, Roots::default());
    eventually(|| {
        let fams = try_poll_one(&mut h, "filesystem")?;
        let usage = fam(&fams, "system.filesystem.usage")?;
        let util = fam(&fams, "system.filesystem.utilization")?;
        let mut mps: Vec<String> = usage
            .series
            .iter()
            .map(|s| {
                s.attributes
                    .iter()
                    .find(|kv| kv.key.as_str() == "system.filesystem.mountpoint")
                    .unwrap()
                    .value
                    .as_str()
                    .to_string()
            })
            .collect();
        mps.dedup();
        check!(mps.iter().any(|m| m == "/"), "/ not reported: {mps:?}");
        for mp in &mps {
            check!(
                !cfg.mount_points_exclude.is_match(mp),
                "{mp} should be excluded"
            );
            let s = statvfs(mp);
            let a = [("used", s.0), ("free", s.1), ("reserved", s.2)];
            for (state, want) in a {
                let got = val(
                    usage,
                    &[
                        ("system.filesystem.mountpoint", mp),
                        ("system.filesystem.state", state),
                    ],
                )?;
                check!(
                    (got - want).abs() <= MIB,
                    "{mp} {state}: {got} vs statvfs {want}"
                );
            }
            let u = val(util, &[("system.filesystem.mountpoint", mp)])?;
            let want = s.0 / (s.0 + s.1);
            check!((u - want).abs() <= 1e-3, "{mp} utilization {u} vs {want}");
        }
        for s in &usage.series {
            let t = s
                .attributes
                .iter()
                .find(|kv| kv.key.as_str() == "system.filesystem.type")
                .unwrap();
            check!(
                !cfg.fs_types_exclude.is_match(&t.value.as_str()),
                "{} should be excluded",
                t.value
            );
        }
        Ok(())
    });
}

/// `/proc/net/dev`: iface -> [rx bytes, rx packets, rx errs, rx drop, tx bytes, tx packets, tx errs, tx drop].
fn net_dev() -> HashMap<String, [u64; 8]> {
    read("/proc/net/dev")
        .lines()
        .skip(2)
        .map(|l| {
            let (i, rest) = l.split_once(':').unwrap();
            let f: Vec<u64> = rest
                .split_whitespace()
                .map(|x| x.parse().unwrap())
                .collect();
            (
                i.trim().to_string(),
                [f[0], f[1], f[2], f[3], f[8], f[9], f[10], f[11]],
            )
        })
        .collect()
}

#[test]
fn network_matches_proc_net_dev() {
    let mut h = HostCollectors::new(&config(vec![CollectorName::Network]), Roots::default());
    let b = net_dev();
    let fams = poll_one(&mut h, "network");
    let a = net_dev();
    let names = [
        "system.network.io",
        "system.network.packet.count",
        "system.network.errors",
        "system.network.packet.dropped",
    ];
    let mut seen = 0;
    for (iface, vb) in &b {
        let Some(va) = a.get(iface) else { continue };
        if iface == "lo" {
            for n in names {
                assert!(value(family(&fams, n), &[("network.interface.name", "lo")]).is_none());
            }
            continue;
        }
        seen += 1;
        for (d, dir) in ["receive", "transmit"].iter().enumerate() {
            for (k, n) in names.iter().enumerate() {
                let got = value(
                    family(&fams, n),
                    &[
                        ("network.interface.name", iface),
                        ("network.io.direction", dir),
                    ],
                )
                .unwrap_or_else(|| panic!("no {n} for {iface} {dir}"))
                    as u64;
                let (lo, hi) = (vb[d * 4 + k], va[d * 4 + k]);
                assert!(
                    lo <= got && got <= hi,
                    "{n} {iface} {dir}: {got} not in [{lo}, {hi}]"
                );
            }
        }
    }
    assert_eq!(family(&fams, names[0]).series.len(), seen * 2);
}

/// The test process's own cgroup: (cpu seconds, memory usage, memory limit) read straight from the files.
/// Reads one number from the cgroup files.
type Reader = Box<dyn Fn() -> f64>;

fn own_cgroup() -> Option<(Reader, Reader, Option<f64>)> {
    let root = PathBuf::from("/sys/fs/cgroup");
    let cg = read("/proc/self/cgroup");
    let pick = |base: PathBuf, path: &str| {
        let p = base.join(path.trim_start_matches('/'));
        if p.is_dir() {
            p
        } else {
            base
        }
    };
    if root.join("cgroup.controllers").exists() {
        let path = cg.lines().find_map(|l| l.strip_prefix("0::"))?.to_string();
        let dir = pick(root, &path);
        let d1 = dir.clone();
        let cpu = move || -> f64 {
            let t = read(d1.join("cpu.stat"));
            let v: f64 = t
                .lines()
                .find_map(|l| l.strip_prefix("usage_usec "))
                .unwrap()
                .parse()
                .unwrap();
            v / 1e6
        };
        let d2 = dir.clone();
        let mem = move || -> f64 { read(d2.join("memory.current")).trim().parse().unwrap() };
        let limit = read(dir.join("memory.max")).trim().parse::<f64>().ok();
        return Some((Box::new(cpu), Box::new(mem), limit));
    }
    let find = |ctrl: &str| {
        cg.lines().find_map(|l| {
            let mut it = l.splitn(3, ':');
            let (_, c, p) = (it.next()?, it.next()?, it.next()?);
            c.split(',')
                .any(|x| x == ctrl)
                .then(|| pick(root.join(c), p))
        })
    };
    let acct = find("cpuacct")?;
    let memd = find("memory")?;
    let cpu = move || -> f64 {
        read(acct.join("cpuacct.usage"))
            .trim()
            .parse::<f64>()
            .unwrap()
            / 1e9
    };
    let m2 = memd.clone();
    let mem = move || -> f64 {
        read(m2.join("memory.usage_in_bytes"))
            .trim()
            .parse()
            .unwrap()
    };
    let limit: f64 = read(memd.join("memory.limit_in_bytes"))
        .trim()
        .parse()
        .unwrap();
    Some((
        Box::new(cpu),
        Box::new(mem),
        (limit < 4.0e18).then_some(limit),
    ))
}

#[test]
fn container_matches_cgroup_files() {
    let Some((cpu, mem, limit)) = own_cgroup() else {
        eprintln!("skipped: no cgroup v2 or v1 cpuacct+memory hierarchy here");
        return;
    };
    let mut h = HostCollectors::new(&config(vec![CollectorName::Container]), Roots::default());
    eventually(|| {
        let (cb, mb) = (cpu(), mem());
        let fams = try_poll_one(&mut h, "container")?;
        let (ca, ma) = (cpu(), mem());
        let got_cpu = only(&fams, "container.cpu.time")?;
        check!(
            cb <= got_cpu + 1e-9 && got_cpu <= ca + 1e-9,
            "cpu {got_cpu} not in [{cb}, {ca}]"
        );
        let got_mem = only(&fams, "container.memory.usage")?;
        check!(
            within(got_mem, mb, ma, MIB),
            "memory usage {got_mem} not within [{mb}, {ma}] +- 1 MiB"
        );
        let ws = only(&fams, "container.memory.working_set")?;
        check!(ws <= got_mem, "working set {ws} > usage {got_mem}");
        let reported = match maybe_family(&fams, "container.memory.limit") {
            Some(_) => Some(only(&fams, "container.memory.limit")?),
            None => None,
        };
        check!(
            reported == limit,
            "memory limit {limit:?} vs reported {reported:?}"
        );
        Ok(())
    });
}

/// Kills the child when dropped, so a failing assertion leaves no process behind.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A `kB` field of `/proc/PID/status`, in bytes.
fn status_kib(pid: u32, key: &str) -> Result<f64, String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("/proc/{pid}/status: {e}"))?;
    status
        .lines()
        .find_map(|l| {
            l.strip_prefix(key)
                .map(|r| r.trim_start_matches(':').trim())
        })
        .and_then(|r| r.split_whitespace().next())
        .and_then(|v| v.parse::<f64>().ok())
        .map(|v| v * 1024.0)
        .ok_or_else(|| format!("no {key} in /proc/{pid}/status"))
}

/// The state letter of `/proc/PID/stat` (`S` for a process asleep).
fn proc_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

#[test]
fn process_found_by_cmdline_and_gone_after_kill() {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let arg = format!("{}.{:09}", 100_000 + std::process::id() % 1000, nanos);
    let mut cfg = config(vec![]);
    cfg.processes = vec![ProcessMatcher {
        name: "sleeper".into(),
        cmdline: Regex::new(&format!("^sleep {}$", regex::escape(&arg))).unwrap(),
    }];
    let mut h = HostCollectors::new(&cfg, Roots::default());
    assert_eq!(h.collector_names(), vec!["process"]);

    let fams = poll_one(&mut h, "process");
    assert_eq!(
        value(
            family(&fams, "process.count"),
            &[("process_name", "sleeper")]
        ),
        Some(0.0)
    );
    assert!(family(&fams, "process.uptime").series.is_empty());

    let child = Child(
        Command::new("sleep")
            .arg(&arg)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn sleep"),
    );
    let pid = child.0.id();
    // Until the child has exec'd, its command line is still the test binary's.
    let mut fams = Vec::new();
    for _ in 0..250 {
        fams = poll_one(&mut h, "process");
        if value(
            family(&fams, "process.count"),
            &[("process_name", "sleeper")],
        ) == Some(1.0)
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let p = [("process_name", "sleeper")];
    assert_eq!(value(family(&fams, "process.count"), &p), Some(1.0));

    // The child has exec'd, but the dynamic loader may still be mapping
    // libraries (VmSize and VmRSS move): compare once it sleeps, with a
    // fresh poll bracketed by status reads that agree with each other.
    eventually(|| {
        check!(proc_state(pid) == Some('S'), "child not asleep yet");
        let (rb, vb) = (status_kib(pid, "VmRSS")?, status_kib(pid, "VmSize")?);
        let fds_b = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .map_err(|e| e.to_string())?
            .count() as f64;
        let fams = try_poll_one(&mut h, "process")?;
        let (ra, va) = (status_kib(pid, "VmRSS")?, status_kib(pid, "VmSize")?);
        let fds_a = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .map_err(|e| e.to_string())?
            .count() as f64;
        let rss = val(fam(&fams, "process.memory.usage")?, &p)?;
        check!(within(rss, rb, ra, 0.0), "rss {rss} vs VmRSS [{rb}, {ra}]");
        let vsz = val(fam(&fams, "process.memory.virtual")?, &p)?;
        check!(within(vsz, vb, va, 0.0), "vsz {vsz} vs VmSize [{vb}, {va}]");
        let threads = val(fam(&fams, "process.thread.count")?, &p)?;
        check!(threads == 1.0, "threads {threads}");
        let fds = val(fam(&fams, "process.unix.file_descriptor.count")?, &p)?;
        check!(
            within(fds, fds_b, fds_a, 0.0),
            "fds {fds} vs [{fds_b}, {fds_a}]"
        );
        let up = val(fam(&fams, "process.uptime")?, &p)?;
        check!((0.0..60.0).contains(&up), "uptime {up}");
        let cpu = fam(&fams, "process.cpu.time")?;
        let user = val(cpu, &[("process_name", "sleeper"), ("cpu.mode", "user")])?;
        let sys = val(cpu, &[("process_name", "sleeper"), ("cpu.mode", "system")])?;
        check!((0.0..1.0).contains(&(user + sys)), "cpu {user} + {sys}");
        Ok(())
    });

    drop(child);
    let fams = poll_one(&mut h, "process");
    assert_eq!(value(family(&fams, "process.count"), &p), Some(0.0));
    assert_eq!(value(family(&fams, "process.memory.usage"), &p), Some(0.0));
    assert!(family(&fams, "process.uptime").series.is_empty());
}

#[test]
fn self_process_matches_proc_self() {
    let pid = std::process::id();
    eventually(|| {
        let rb = status_kib(pid, "VmRSS")?;
        let fams = host::self_process_families(Path::new("/proc")).map_err(|e| e.to_string())?;
        let ra = status_kib(pid, "VmRSS")?;
        let rss = only(&fams, "process.resident_memory")?;
        check!(within(rss, rb, ra, MIB), "rss {rss} vs VmRSS [{rb}, {ra}]");
        let max = only(&fams, "process.max_fds")?;
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: valid out-pointer.
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
        check!(
            max == lim.rlim_cur as f64,
            "max fds {max} vs {}",
            lim.rlim_cur
        );
        let start = only(&fams, "process.start_time")?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        check!(
            start <= now + 1.0 && start > now - 3600.0,
            "start {start} now {now}"
        );
        let fds = only(&fams, "process.open_fds")?;
        check!(fds >= 3.0, "open fds {fds}");
        Ok(())
    });
}

#[test]
fn full_poll_reports_every_collector() {
    let mut cfg = config(CollectorName::ALL.to_vec());
    cfg.processes = vec![ProcessMatcher {
        name: "init".into(),
        cmdline: Regex::new(".").unwrap(),
    }];
    cfg.app_container = Some(remora::config::AppContainer {
        name: "app".into(),
        memory_limit: Some(512.0 * MIB),
        cpu_limit: Some(0.5),
    });
    let mut h = HostCollectors::new(&cfg, Roots::default());
    let specs = h.specs();
    let reports = h.poll();
    let names: Vec<&str> = reports.iter().map(|r| r.collector).collect();
    assert_eq!(
        names,
        vec![
            "cpu",
            "memory",
            "load",
            "filesystem",
            "network",
            "uptime",
            "container",
            "process",
            "app_container"
        ]
    );
    for r in &reports {
        if r.collector == "container" && own_cgroup().is_none() {
            continue;
        }
        assert!(r.result.is_ok(), "{}: {:?}", r.collector, r.result);
        for f in &r.families {
            assert!(
                specs.iter().any(|s| *s.name == *f.name),
                "{} not declared",
                f.name
            );
        }
    }
}
