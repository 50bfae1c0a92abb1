//! The `baton` binary: everything lives in the library's `cli` module.

fn main() -> std::process::ExitCode {
    baton::cli::main()
}
