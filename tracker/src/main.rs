//! `skein-tracker`: run a tracker, and administer its users and departments.

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
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
