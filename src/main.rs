//! The `baton` binary: everything lives in the library's `cli` module.

// The engine allocates many small, short-lived values (events, keys); glibc's
// allocator spent about half the demo's CPU time in malloc/free bookkeeping.
// jemalloc measured faster than mimalloc here and, with the settings below,
// keeps the resident set about a quarter smaller.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's start-up options (read by jemalloc itself, hence the exported
/// symbol): two arenas for a process whose hot threads are the runtime's
/// workers; a background thread that returns freed pages to the OS within a
/// quarter of a second, so a burst does not stay resident for the process's life.
#[allow(non_upper_case_globals)]
#[export_name = "_rjem_malloc_conf"]
pub static malloc_conf: &[u8] =
    b"narenas:2,background_thread:true,dirty_decay_ms:250,muzzy_decay_ms:0\0";

fn main() -> std::process::ExitCode {
    baton::cli::main()
}
