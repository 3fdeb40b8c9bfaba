//! `skein-desk [--profile DIR]`: the Skein desktop app.

use clap::Parser;
use std::path::PathBuf;

/// The Skein desktop app.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Profile directory (as for `skein`); default ~/.skein/default.
    #[arg(long, env = "SKEIN_PROFILE")]
    profile: Option<PathBuf>,
}

fn main() -> iced::Result {
    // The local time offset can be read safely only before threads start.
    skein_desk::clock::init();
    let _ = rustls::crypto::ring::default_provider().install_default();
    skein_node::cli::init_tracing();
    let args = Args::parse();
    let profile = args.profile.unwrap_or_else(|| {
        let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
        home.join(".skein/default")
    });
    iced::application(
        move || skein_desk::app::App::boot(profile.clone()),
        skein_desk::app::App::update,
        skein_desk::app::App::view,
    )
    .title(skein_desk::app::App::title)
    .subscription(skein_desk::app::App::subscription)
    .theme(skein_desk::app::App::theme)
    .window(iced::window::Settings {
        size: iced::Size::new(1000.0, 700.0),
        min_size: Some(iced::Size::new(800.0, 600.0)),
        exit_on_close_request: false,
        ..Default::default()
    })
    .default_font(skein_desk::style::SANS)
    .run()
}
