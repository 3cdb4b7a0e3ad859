//! The `remora` binary: a thin shell over [`remora::cli::main`].

fn main() -> std::process::ExitCode {
    remora::cli::main()
}
