//! The two C math functions remora's dependencies call, `pow` and `log`,
//! defined here from the `libm` crate (a Rust port of musl's libm) so that the
//! binary does not load glibc's `libm.so.6`.
//!
//! Only tokio's multi-thread scheduler calls `pow` in a sidecar's life (the
//! weight of its task poll-time average, after each batch of tasks) and the
//! OpenTelemetry SDK's exponential histograms call `log`. For those two
//! symbols the loader mapped all of `libm.so.6`, and it resolved libm's many
//! IFUNCs at every start: 0.46 MiB of RSS in every pod (CHANGELOG.md, "Cost per
//! series"). With both defined in the binary, nothing is left for libm to
//! resolve and the linker (`--as-needed`, rustc's default) drops it.
//!
//! Both follow C's contract, including its special cases (`pow(x, 0)` is 1
//! for any `x`, `log` of a negative number is NaN), and give glibc's results
//! or one unit in the last place from them (the tests below).

/// C's `pow`: `x` raised to `y`.
#[unsafe(no_mangle)]
pub extern "C" fn pow(x: f64, y: f64) -> f64 {
    libm::pow(x, y)
}

/// C's `log`: the natural logarithm of `x`.
#[unsafe(no_mangle)]
pub extern "C" fn log(x: f64) -> f64 {
    libm::log(x)
}

#[cfg(test)]
mod tests {
    use super::{log, pow};

    #[test]
    fn follows_the_c_contract() {
        assert_eq!(pow(2.0, 10.0), 1024.0);
        assert_eq!(pow(f64::NAN, 0.0), 1.0);
        assert_eq!(pow(0.0, -1.0), f64::INFINITY);
        assert!(pow(-8.0, 1.0 / 3.0).is_nan());
        assert_eq!(log(1.0), 0.0);
        assert_eq!(log(0.0), f64::NEG_INFINITY);
        assert!(log(-1.0).is_nan());
        assert!(log(f64::NAN).is_nan());
    }

    /// What glibc's `log` and `pow` give (Python's `math.log` and `math.pow`
    /// on Debian 12), to the last bit for `log` and within one unit in the
    /// last place for `pow` (`pow(10, -5)` is one above glibc's). `f64::ln`
    /// and `powf` cannot be the reference: in this crate they call these very
    /// functions.
    #[test]
    fn gives_glibcs_results() {
        let logs = [
            (2.0, 0x3fe62e42fefa39ef_u64),
            (10.0, 0x40026bb1bbb55516),
            (0.5, 0xbfe62e42fefa39ef),
            (1e-300, 0xc085963447f87fb5),
            (1e300, 0x4085963447f87fb5),
            (123.456, 0x401343774f3e2362),
        ];
        for (x, bits) in logs {
            assert_eq!(log(x).to_bits(), bits, "log({x})");
        }
        let pows = [
            (0.9, 2.0, 0x3fe9eb851eb851ec_u64),
            (0.9, 7.0, 0x3fde9c6a99d1cdbf),
            (0.9, 63.0, 0x3f55769fcf77d06a),
            (2.0, 0.5, 0x3ff6a09e667f3bcd),
            (1.5, -3.25, 0x3fd1228d7b1e6c62),
            (10.0, -5.0, 0x3ee4f8b588e368f1),
        ];
        for (x, y, bits) in pows {
            let got = pow(x, y).to_bits();
            assert!(
                got.abs_diff(bits) <= 1,
                "pow({x}, {y}): {got:#x}, glibc {bits:#x}"
            );
        }
    }
}
