//! One full host poll with every collector on (criterion), then the CPU time
//! per poll and per collector measured over a fixed number of polls.
//!
//! Run: `cargo bench --bench host`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, Criterion};
use regex::Regex;
use remora::config::{AppContainer, CollectorName, HostConfig, ProcessMatcher};
use remora::host::{HostCollectors, Roots};

fn config() -> HostConfig {
    HostConfig {
        enabled: true,
        interval: Duration::from_secs(15),
        collectors: CollectorName::ALL.to_vec(),
        mount_points_exclude: Regex::new("^/(dev|proc|sys|run)($|/)").unwrap(),
        fs_types_exclude: Regex::new(
            "^(autofs|binfmt_misc|bpf|cgroup2?|configfs|debugfs|devpts|devtmpfs|fusectl|hugetlbfs|mqueue|nsfs|overlay|proc|pstore|rpc_pipefs|securityfs|selinuxfs|squashfs|sysfs|tracefs)$",
        )
        .unwrap(),
        devices_exclude: Regex::new("^lo$").unwrap(),
        processes: vec![
            ProcessMatcher {
                name: "shell".into(),
                cmdline: Regex::new("^(/usr)?(/bin/)?(ba)?sh( |$)").unwrap(),
            },
            ProcessMatcher {
                name: "api".into(),
                cmdline: Regex::new("uvicorn .*main:app").unwrap(),
            },
        ],
        app_container: Some(AppContainer {
            name: "app".into(),
            memory_limit: Some(512.0 * 1024.0 * 1024.0),
            cpu_limit: Some(0.5),
        }),
    }
}

/// CPU time of the calling thread.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn host_poll(c: &mut Criterion) {
    let mut h = HostCollectors::new(&config(), Roots::default());
    let first = h.poll();
    for r in &first {
        if let Err(e) = &r.result {
            eprintln!("note: collector {} fails here: {e}", r.collector);
        }
    }
    c.bench_function("host_poll_all_collectors", |b| {
        b.iter(|| black_box(h.poll()))
    });

    // CPU time per poll, and wall time per collector, over a fixed number of polls.
    const N: u32 = 500;
    let names = h.collector_names();
    let mut per = vec![Duration::ZERO; names.len()];
    let mut series = 0usize;
    let start = thread_cpu();
    for _ in 0..N {
        let reports = black_box(h.poll());
        for (p, r) in per.iter_mut().zip(&reports) {
            *p += r.duration;
        }
        series = reports
            .iter()
            .flat_map(|r| &r.families)
            .map(|f| f.series.len())
            .sum();
    }
    let cpu = thread_cpu() - start;
    println!(
        "host poll: {:.1} us CPU per poll over {N} polls ({series} series per poll); at a 15 s interval that is {:.4}% of one core",
        cpu.as_secs_f64() * 1e6 / f64::from(N),
        cpu.as_secs_f64() / f64::from(N) / 15.0 * 100.0
    );
    for (n, d) in names.iter().zip(&per) {
        println!(
            "  {n:<14} {:>8.1} us per poll (wall)",
            d.as_secs_f64() * 1e6 / f64::from(N)
        );
    }
}

criterion_group!(benches, host_poll);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
