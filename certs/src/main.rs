//! `skein-certs`: create the organisation CA, issue tracker certificates,
//! and show or verify certificate files.
//!
//! Errors are printed as one line, `error: ...`, and exit with status 1.

use anyhow::{Result, anyhow};
use clap::{Parser, Subcommand};
use skein_certs::{CertInfo, DEFAULT_CA_VALIDITY_DAYS, DEFAULT_TRACKER_VALIDITY_DAYS, OrgCa, show, verify_chain};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use time::OffsetDateTime;

/// Skein certificate tool: org CA, tracker TLS certificates, inspection.
#[derive(Debug, Parser)]
#[command(name = "skein-certs", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Manage the organisation CA.
    #[command(subcommand)]
    Ca(CaCommand),
    /// Manage tracker TLS certificates.
    #[command(subcommand)]
    Tracker(TrackerCommand),
    /// Print subject, issuer, SANs, validity and fingerprint of every
    /// certificate in a PEM file.
    Show {
        /// PEM file to show.
        file: PathBuf,
        /// Print JSON (an array, one object per certificate).
        #[arg(long)]
        json: bool,
    },
    /// Check that a certificate was signed by a CA and is valid now.
    Verify {
        /// CA certificate (PEM).
        #[arg(long)]
        ca: PathBuf,
        /// Certificate to check (PEM; the first certificate is checked).
        cert: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum CaCommand {
    /// Create the organisation CA: writes DIR/ca.pem and DIR/ca.key (0600).
    Create {
        /// Organisation name, stored in the CA subject.
        #[arg(long)]
        org: String,
        /// Output directory (created if missing).
        #[arg(long, default_value = ".")]
        out: PathBuf,
        /// Validity in days.
        #[arg(long, default_value_t = DEFAULT_CA_VALIDITY_DAYS)]
        days: u32,
        /// Overwrite an existing ca.pem / ca.key.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Subcommand)]
enum TrackerCommand {
    /// Issue a tracker certificate signed by the CA in --ca-dir: writes
    /// DIR/tracker.pem and DIR/tracker.key (0600). `localhost` and
    /// `127.0.0.1` are always included in the SANs.
    Issue {
        /// Directory holding ca.pem and ca.key.
        #[arg(long)]
        ca_dir: PathBuf,
        /// Output directory (created if missing).
        #[arg(long, default_value = ".")]
        out: PathBuf,
        /// DNS name or IP address clients use to reach the tracker
        /// (repeatable, or comma-separated).
        #[arg(long = "san", value_name = "NAME_OR_IP", value_delimiter = ',')]
        sans: Vec<String>,
        /// Validity in days (capped at the CA's expiry).
        #[arg(long, default_value_t = DEFAULT_TRACKER_VALIDITY_DAYS)]
        days: u32,
        /// Overwrite an existing tracker.pem / tracker.key.
        #[arg(long)]
        force: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // `{e}` only: library errors already include their cause, so the
            // alternate form would repeat it.
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Ca(CaCommand::Create { org, out, days, force }) => ca_create(&org, &out, days, force),
        Command::Tracker(TrackerCommand::Issue { ca_dir, out, sans, days, force }) => {
            tracker_issue(&ca_dir, &out, sans, days, force)
        }
        Command::Show { file, json } => show_file(&file, json),
        Command::Verify { ca, cert } => verify(&ca, &cert),
    }
}

fn ca_create(org: &str, out: &Path, days: u32, force: bool) -> Result<()> {
    let cert_path = out.join("ca.pem");
    let key_path = out.join("ca.key");
    // Refuse before generating anything or creating the directory.
    skein_certs::files::ensure_writable(&[&cert_path, &key_path], force)?;
    let ca = OrgCa::generate(org, days)?;
    create_dir(out)?;
    ca.save(&cert_path, &key_path, force)?;
    println!("wrote {} and {} for organisation {:?}", cert_path.display(), key_path.display(), ca.org_name());
    Ok(())
}

fn tracker_issue(ca_dir: &Path, out: &Path, mut sans: Vec<String>, days: u32, force: bool) -> Result<()> {
    let cert_path = out.join("tracker.pem");
    let key_path = out.join("tracker.key");
    skein_certs::files::ensure_writable(&[&cert_path, &key_path], force)?;
    let ca = OrgCa::load(&ca_dir.join("ca.pem"), &ca_dir.join("ca.key"))?;
    sans.retain(|s| !s.trim().is_empty());
    sans.extend(["localhost".to_string(), "127.0.0.1".to_string()]);
    let issued = ca.issue_tracker_cert(&sans, days)?;
    create_dir(out)?;
    issued.save(&cert_path, &key_path, force)?;
    let info = skein_certs::inspect::show(&cert_path)?;
    let sans_text = info.first().map(|i| i.sans.join(", ")).unwrap_or_default();
    println!("wrote {} and {} (SANs: {sans_text})", cert_path.display(), key_path.display());
    Ok(())
}

fn show_file(file: &Path, json: bool) -> Result<()> {
    let infos = show(file)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&infos)?);
        return Ok(());
    }
    for (i, info) in infos.iter().enumerate() {
        if i > 0 {
            println!();
        }
        print_info(info);
    }
    Ok(())
}

fn print_info(info: &CertInfo) {
    println!("subject:     {}", info.subject);
    println!("issuer:      {}", info.issuer);
    if !info.sans.is_empty() {
        println!("SANs:        {}", info.sans.join(", "));
    }
    println!("CA:          {}", if info.is_ca { "yes" } else { "no" });
    println!("not before:  {}", info.not_before);
    println!("not after:   {}", info.not_after);
    println!("serial:      {}", info.serial);
    println!("SHA-256:     {}", info.sha256_fingerprint);
}

fn verify(ca: &Path, cert: &Path) -> Result<()> {
    let info = verify_chain(cert, ca, OffsetDateTime::now_utc())?;
    println!("ok: {} is signed by {} (valid until {})", cert.display(), info.issuer, info.not_after);
    Ok(())
}

fn create_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| anyhow!("cannot create directory {}: {e}", dir.display()))
}
