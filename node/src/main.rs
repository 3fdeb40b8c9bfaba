//! `skein`: the headless Skein node and its command line.

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    // One process-wide TLS provider; see DEPENDENCIES.md on the two-provider panic.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = skein_node::cli::Cli::parse();
    skein_node::cli::init_tracing();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(skein_node::cli::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
