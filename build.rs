//! Records the git revision and rustc version for `remora_build_info`, and
//! lays out the release binary's code in the order of `link/code-order.txt`.

use std::process::Command;

fn output(cmd: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
}

fn main() {
    let revision = std::env::var("REMORA_REVISION")
        .ok()
        .or_else(|| output("git", &["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".into());
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let rustc_version = output(&rustc, &["--version"])
        .and_then(|v| v.split_whitespace().nth(1).map(String::from))
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=REMORA_REVISION={revision}");
    println!("cargo:rustc-env=REMORA_RUSTC_VERSION={rustc_version}");
    println!("cargo:rerun-if-env-changed=REMORA_REVISION");
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=.git/refs/heads");
    // `REMORA_MATHLIB=0` leaves out `src/mathlib.rs` (the binary then loads
    // libm.so.6 for `pow` and `log`): a build setting for scripts/bench-pods.sh.
    println!("cargo:rustc-check-cfg=cfg(remora_no_mathlib)");
    println!("cargo:rerun-if-env-changed=REMORA_MATHLIB");
    if std::env::var("REMORA_MATHLIB").is_ok_and(|v| v == "0") {
        println!("cargo:rustc-cfg=remora_no_mathlib");
    }
    order_code(&rustc_version);
}

/// Places the functions that run in a sidecar's life (start-up, polls,
/// renders, scrapes: `link/code-order.txt`, written by
/// `scripts/code-order.sh` from callgrind runs) together at the start of the
/// release binary's code. The kernel maps a binary's code 64 KB at a time
/// around each page that runs, so code that runs spread among code that
/// never does maps most of the binary; laid out together it maps about a
/// third. A name the build no longer has is skipped (the function keeps its
/// default place), so a stale list costs memory, never a build.
///
/// Only where the linker is known to take `--symbol-ordering-file`: rustc's
/// own LLD, the default on x86_64 Linux since Rust 1.90, with no linker
/// configured. `REMORA_CODE_ORDER=0` turns the order off, `REMORA_RELR=0`
/// the packed relocations below; `REMORA_LINK_MAP=PATH`
/// writes the linker's map there (the names of a stripped binary's
/// functions, which `scripts/code-order.sh` reads).
fn order_code(rustc_version: &str) {
    println!("cargo:rerun-if-env-changed=REMORA_CODE_ORDER");
    println!("cargo:rerun-if-env-changed=REMORA_RELR");
    println!("cargo:rerun-if-env-changed=REMORA_LINK_MAP");
    println!("cargo:rerun-if-changed=link/code-order.txt");
    let env = |k: &str| std::env::var(k).unwrap_or_default();
    let minor = rustc_version
        .split('.')
        .nth(1)
        .and_then(|m| m.parse::<u32>().ok());
    let default_lld = env("TARGET") == "x86_64-unknown-linux-gnu"
        && rustc_version.starts_with("1.")
        && minor.is_some_and(|m| m >= 90)
        && std::env::var_os("RUSTC_LINKER").is_none()
        && !env("CARGO_ENCODED_RUSTFLAGS").contains("link");
    if env("PROFILE") != "release" || !default_lld {
        return;
    }
    let file = std::path::Path::new(&env("CARGO_MANIFEST_DIR")).join("link/code-order.txt");
    if env("REMORA_CODE_ORDER") != "0" && file.is_file() {
        let file = file.display();
        println!("cargo:rustc-link-arg-bin=remora=-Wl,--symbol-ordering-file={file}");
        println!("cargo:rustc-link-arg-bin=remora=-Wl,--no-warn-symbol-ordering");
    }
    // Relative relocations packed (DT_RELR, glibc 2.36 and later): a PIE's
    // table of them is 400 KB that the loader reads at every start, and
    // whose pages then stay mapped; packed it is a few KB.
    let glibc = output("getconf", &["GNU_LIBC_VERSION"]).unwrap_or_default();
    let glibc_minor = glibc
        .strip_prefix("glibc 2.")
        .and_then(|m| m.parse::<u32>().ok());
    if env("REMORA_RELR") != "0" && glibc_minor.is_some_and(|m| m >= 36) {
        println!("cargo:rustc-link-arg-bin=remora=-Wl,-z,pack-relative-relocs");
    }
    let map = env("REMORA_LINK_MAP");
    if !map.is_empty() {
        println!("cargo:rustc-link-arg-bin=remora=-Wl,-Map={map}");
    }
}
