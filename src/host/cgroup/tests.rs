//! Unit tests of the cgroup collector.

use super::*;
use std::fs;

fn write(p: &Path, content: impl AsRef<[u8]>) {
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, content).unwrap();
}

fn collect(c: &mut ContainerCollector) -> Vec<(String, f64)> {
    let mut out = Vec::new();
    let mut t = Tally::default();
    c.collect(&mut out, &mut t).unwrap();
    assert!(t.is_empty(), "{t:?}");
    out.iter()
        .map(|f| (f.name.to_string(), f.series[0].value))
        .collect()
}

fn v2_tree(dir: &Path, cgpath: &str, cpu_max: &str, mem_max: &str) -> (PathBuf, PathBuf) {
    let proc = dir.join("proc");
    let cg = dir.join("cgroup");
    write(&proc.join("self/cgroup"), format!("0::{cgpath}\n"));
    write(&cg.join("cgroup.controllers"), "cpu memory\n");
    let d = cg.join(cgpath.trim_start_matches('/'));
    write(
        &d.join("cpu.stat"),
        "usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\nnr_periods 10\nnr_throttled 2\nthrottled_usec 1500000\n",
    );
    write(&d.join("cpu.max"), cpu_max);
    write(&d.join("memory.current"), "104857600\n");
    write(&d.join("memory.max"), mem_max);
    write(
        &d.join("memory.stat"),
        "anon 50000000\nfile 40000000\nactive_file 10000000\ninactive_file 30000000\n",
    );
    (proc, cg)
}

#[test]
fn v2_namespaced_root_with_limits() {
    let dir = tempfile::tempdir().unwrap();
    let (proc, cg) = v2_tree(dir.path(), "/", "50000 100000\n", "268435456\n");
    let mut c = ContainerCollector::new(&proc, &cg);
    let got = collect(&mut c);
    assert_eq!(c.layout(), Some(&Layout::V2 { dir: cg.clone() }));
    assert_eq!(
        got,
        vec![
            (CPU_TIME.into(), 2.5),
            (CPU_THROTTLED.into(), 1.5),
            (CPU_LIMIT.into(), 0.5),
            (MEM_USAGE.into(), 104857600.0),
            (MEM_LIMIT.into(), 268435456.0),
            (MEM_WORKING_SET.into(), 74857600.0),
        ]
    );
}

#[test]
fn v2_nested_path_unlimited() {
    let dir = tempfile::tempdir().unwrap();
    let (proc, cg) = v2_tree(dir.path(), "/kubepods/pod1/abc", "max 100000\n", "max\n");
    let mut c = ContainerCollector::new(&proc, &cg);
    let got = collect(&mut c);
    assert_eq!(
        c.layout(),
        Some(&Layout::V2 {
            dir: cg.join("kubepods/pod1/abc")
        })
    );
    let names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        vec![CPU_TIME, CPU_THROTTLED, MEM_USAGE, MEM_WORKING_SET]
    );
}

#[test]
fn v2_path_missing_under_mount_falls_back_to_mount() {
    let dir = tempfile::tempdir().unwrap();
    let (proc, cg) = v2_tree(dir.path(), "/", "max 100000\n", "max\n");
    write(
        &proc.join("self/cgroup"),
        "0::/system.slice/docker-abc.scope\n",
    );
    let mut c = ContainerCollector::new(&proc, &cg);
    collect(&mut c);
    assert_eq!(c.layout(), Some(&Layout::V2 { dir: cg.clone() }));
}

fn v1_tree(dir: &Path, combined: bool, quota: &str, limit: &str) -> (PathBuf, PathBuf) {
    let proc = dir.join("proc");
    let cg = dir.join("cgroup");
    let path = "/docker/abc";
    write(
        &proc.join("self/cgroup"),
        format!(
            "12:memory:{path}\n11:cpu,cpuacct:{path}\n3:pids:{path}\n1:name=systemd:{path}\n0::/\n"
        ),
    );
    let (cpu, acct) = if combined {
        (
            cg.join("cpu,cpuacct/docker/abc"),
            cg.join("cpu,cpuacct/docker/abc"),
        )
    } else {
        (cg.join("cpu/docker/abc"), cg.join("cpuacct/docker/abc"))
    };
    write(&acct.join("cpuacct.usage"), "3000000000\n");
    write(
        &cpu.join("cpu.stat"),
        "nr_periods 5\nnr_throttled 1\nthrottled_time 250000000\n",
    );
    write(&cpu.join("cpu.cfs_quota_us"), quota);
    write(&cpu.join("cpu.cfs_period_us"), "100000\n");
    let mem = cg.join("memory/docker/abc");
    write(&mem.join("memory.usage_in_bytes"), "2000000\n");
    write(&mem.join("memory.limit_in_bytes"), limit);
    write(
        &mem.join("memory.stat"),
        "cache 100\ninactive_file 999\ntotal_inactive_file 500000\ntotal_active_file 1\n",
    );
    (proc, cg)
}

#[test]
fn v1_combined_mount_with_limits() {
    let dir = tempfile::tempdir().unwrap();
    let (proc, cg) = v1_tree(dir.path(), true, "150000\n", "536870912\n");
    let mut c = ContainerCollector::new(&proc, &cg);
    let got = collect(&mut c);
    assert_eq!(
        got,
        vec![
            (CPU_TIME.into(), 3.0),
            (CPU_THROTTLED.into(), 0.25),
            (CPU_LIMIT.into(), 1.5),
            (MEM_USAGE.into(), 2000000.0),
            (MEM_LIMIT.into(), 536870912.0),
            (MEM_WORKING_SET.into(), 1500000.0),
        ]
    );
}

#[test]
fn v1_separate_mounts_unlimited() {
    let dir = tempfile::tempdir().unwrap();
    let (proc, cg) = v1_tree(dir.path(), false, "-1\n", "9223372036854771712\n");
    let mut c = ContainerCollector::new(&proc, &cg);
    let got = collect(&mut c);
    let names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        vec![CPU_TIME, CPU_THROTTLED, MEM_USAGE, MEM_WORKING_SET]
    );
    assert_eq!(
        c.layout(),
        Some(&Layout::V1 {
            cpu: Some(cg.join("cpu/docker/abc")),
            cpuacct: cg.join("cpuacct/docker/abc"),
            memory: cg.join("memory/docker/abc"),
        })
    );
}

#[test]
fn missing_files_are_errors_and_redetect() {
    let dir = tempfile::tempdir().unwrap();
    let (proc, cg) = v2_tree(dir.path(), "/", "max\n", "max\n");
    let mut c = ContainerCollector::new(&proc, &cg);
    collect(&mut c);
    fs::remove_file(cg.join("memory.current")).unwrap();
    let err = c
        .collect(&mut Vec::new(), &mut Tally::default())
        .unwrap_err();
    assert!(err.to_string().contains("memory.current"), "{err}");
    assert_eq!(c.layout(), None);
    // No hierarchy at all.
    let empty = tempfile::tempdir().unwrap();
    write(&empty.path().join("proc/self/cgroup"), "0::/\n");
    let mut c = ContainerCollector::new(&empty.path().join("proc"), &empty.path().join("cg"));
    assert!(c.collect(&mut Vec::new(), &mut Tally::default()).is_err());
}

fn collect_odd(c: &mut ContainerCollector) -> (Vec<String>, Tally) {
    let mut out = Vec::new();
    let mut t = Tally::default();
    c.collect(&mut out, &mut t).unwrap();
    (out.iter().map(|f| f.name.to_string()).collect(), t)
}

#[test]
fn v2_odd_values_drop_their_series_only() {
    let dir = tempfile::tempdir().unwrap();
    let (proc, cg) = v2_tree(dir.path(), "/", "50000 x\n", "99999999999999999999\n");
    write(&proc.join("self/cgroup"), "garbage\n0::/\n");
    write(&cg.join("cpu.stat"), "usage_usec\nthrottled_usec 7\n");
    write(&cg.join("memory.stat"), "inactive_file -3\n");
    let mut c = ContainerCollector::new(&proc, &cg);
    let (names, t) = collect_odd(&mut c);
    // usage_usec truncated, cpu.max period invalid, memory.max too big,
    // inactive_file invalid (so no working set).
    assert_eq!(names, vec![CPU_THROTTLED, MEM_USAGE]);
    assert_eq!(t.get(Reason::MalformedLine), 1);
    assert_eq!(t.get(Reason::MissingColumn), 1);
    assert_eq!(t.get(Reason::InvalidNumber), 2);
    assert_eq!(t.get(Reason::Overflow), 1);
    write(&cg.join("memory.current"), b"\xff\n".as_slice());
    let (names, t) = collect_odd(&mut c);
    assert_eq!(names, vec![CPU_THROTTLED]);
    assert_eq!(t.get(Reason::NonUtf8), 1);
}

#[test]
fn v1_odd_values_drop_their_series_only() {
    let dir = tempfile::tempdir().unwrap();
    let (proc, cg) = v1_tree(dir.path(), true, "-99999999999999999999\n", "x\n");
    let acct = cg.join("cpu,cpuacct/docker/abc");
    write(&acct.join("cpuacct.usage"), "18446744073709551616\n");
    write(&acct.join("cpu.stat"), "throttled_time\n");
    let mem = cg.join("memory/docker/abc");
    write(&mem.join("memory.stat"), "total_inactive_file 1x\n");
    let mut c = ContainerCollector::new(&proc, &cg);
    let (names, t) = collect_odd(&mut c);
    assert_eq!(names, vec![MEM_USAGE]);
    assert_eq!(t.get(Reason::Overflow), 2);
    assert_eq!(t.get(Reason::InvalidNumber), 2);
    assert_eq!(t.get(Reason::MissingColumn), 1);
}

#[test]
fn cpu_max_parsing() {
    let p = Path::new("cpu.max");
    assert_eq!(parse_cpu_max(p, "max 100000").unwrap(), None);
    assert_eq!(parse_cpu_max(p, "200000 100000\n").unwrap(), Some(2.0));
    assert!(parse_cpu_max(p, "").is_err());
    assert!(parse_cpu_max(p, "x 1").is_err());
}
