//! The `lwsd-load` binary: see the library's docs and `lwsd-load --help`.

#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    lwsd_load::cli::main()
}
