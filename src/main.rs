//! The `baton` binary: everything lives in the library's `cli` module.

// The engine allocates many small, short-lived values (events, keys); glibc's
// allocator spent about half the demo's CPU time in malloc/free bookkeeping.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    baton::cli::main()
}
