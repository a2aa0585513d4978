//! `lwsd`: see the library's [`lwsd::run`].

fn main() -> std::process::ExitCode {
    lwsd::run()
}
