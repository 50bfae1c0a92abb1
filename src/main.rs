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
    baton::cli::main_with(|w| {
        if w == baton::cli::Workload::BatchFold {
            // A replay allocates and frees in waves; returning freed pages
            // after 250 ms made it re-fault them (on a 10M-event replay:
            // 8.6 s of system time instead of 5.0 s, and 20% slower).
            keep_freed_pages_ms(10_000);
        }
    })
}

/// Sets jemalloc's dirty and muzzy decay time of every arena (and of arenas
/// created later). Best effort: a failing call leaves the defaults.
fn keep_freed_pages_ms(ms: isize) {
    use std::ffi::{c_void, CString};
    use std::ptr::null_mut;
    let set = |name: &str| {
        let Ok(name) = CString::new(name) else { return };
        let mut v = ms;
        // SAFETY: a documented mallctl name taking an ssize_t, given a
        // pointer to one and its size; no old value is read.
        unsafe {
            tikv_jemalloc_sys::mallctl(
                name.as_ptr(),
                null_mut(),
                null_mut(),
                (&mut v as *mut isize).cast::<c_void>(),
                std::mem::size_of::<isize>(),
            );
        }
    };
    let mut narenas: u32 = 0;
    let mut len = std::mem::size_of::<u32>();
    // SAFETY: reads an unsigned into a u32 of the given size.
    let ok = unsafe {
        tikv_jemalloc_sys::mallctl(
            c"arenas.narenas".as_ptr(),
            (&mut narenas as *mut u32).cast::<c_void>(),
            &mut len,
            null_mut(),
            0,
        )
    } == 0;
    for i in 0..if ok { narenas } else { 0 } {
        set(&format!("arena.{i}.dirty_decay_ms"));
        set(&format!("arena.{i}.muzzy_decay_ms"));
    }
    set("arenas.dirty_decay_ms");
    set("arenas.muzzy_decay_ms");
}
