//! The `domuify` binary: parse, run, print the error chain, map it to an exit code.

fn main() -> std::process::ExitCode {
    domuify::cli_main()
}
