//! The `ice-sync` binary: tune the allocator, parse the command line, run the command,
//! map the result to an exit code. Everything else lives in the library.

use std::process::ExitCode;

use clap::Parser;
use ice_sync::cli::{self, Cli, Exit};

fn main() -> ExitCode {
    // Before any other thread exists: glibc reads these settings when it first
    // creates an arena.
    tune_allocator();
    // `ice-sync status | head -1`: the reader leaving is not an error.
    cli::output::quiet_on_closed_pipe();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(cli::run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(e) if cli::output::is_closed_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            // One line, the whole cause chain: what failed and why.
            // The chain may quote outside text (ICE, the database): escaped.
            eprintln!("error: {}", ice_sync::text::printable(&format!("{e:#}")));
            let code = e.downcast_ref::<Exit>().map_or(1, |x| x.code);
            ExitCode::from(code)
        }
    }
}

/// glibc malloc, set for a small daemon rather than a throughput server (see
/// docs/performance.md, "Memory"). Environment variables (`MALLOC_ARENA_MAX`, ...) still
/// win where set, because glibc reads them at start-up and these calls only run when
/// they are absent.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn tune_allocator() {
    let settings = [
        // By default every thread that allocates (tokio workers, the SQLite connection
        // threads) gets an arena of its own, up to 8 per core, and memory freed in one
        // arena is never reused by another: each kept its own high-water mark (4 arenas
        // were 24 of the 41 MiB at 10,000 projects). The threads allocate little at a
        // time, so one shared arena costs no measurable contention.
        ("MALLOC_ARENA_MAX", libc::M_ARENA_MAX, 1),
        // Fixed instead of adaptive: glibc raises the mmap threshold up to 32 MiB after
        // each large block is freed, so later large buffers (SQL parameters listing many
        // IDs, response bodies) land in the heap and stay there. Fixed, blocks above
        // 128 KiB are mapped and unmapped, and free space above 128 KiB at the top of
        // the heap goes back to the system.
        ("MALLOC_MMAP_THRESHOLD_", libc::M_MMAP_THRESHOLD, 128 * 1024),
        ("MALLOC_TRIM_THRESHOLD_", libc::M_TRIM_THRESHOLD, 128 * 1024),
    ];
    for (variable, param, value) in settings {
        if std::env::var_os(variable).is_none() {
            // SAFETY: mallopt only changes allocator parameters; it is called before any
            // other thread exists, and glibc serialises it with allocation anyway.
            unsafe {
                libc::mallopt(param, value);
            }
        }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn tune_allocator() {}
