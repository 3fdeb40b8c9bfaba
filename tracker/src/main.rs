//! `skein-tracker`: run a tracker, and administer its users and departments.

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    limit_malloc_arenas();
    // One process-wide TLS provider; see DEPENDENCIES.md on the two-provider panic.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = skein_tracker::cli::Cli::parse();
    skein_tracker::cli::init_tracing();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(skein_tracker::cli::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Caps glibc's malloc at two arenas, before any thread starts.
///
/// By default glibc gives each thread that allocates (runtime workers, the
/// blocking pool hashing passwords, SQLite workers) an arena of its own, up
/// to eight per core, and memory freed in one arena is not reused by another.
/// With thousands of idle clients that cost about a third of the tracker's
/// memory (`skein-load`: 37.7 KiB per idle client by default, 25.5 KiB with
/// two arenas). The tracker spends its time in network IO and SQLite, not in
/// malloc, so the extra lock contention does not show.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn limit_malloc_arenas() {
    // SAFETY: mallopt only changes allocator settings; it is called first
    // thing in main, while this is the only thread.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn limit_malloc_arenas() {}
