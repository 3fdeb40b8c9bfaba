//! First-run initialisation of a data directory: the org CA, the tracker
//! certificate, the store, the organisation keys and the first admin.
//!
//! Every step is skipped when its result already exists, so `run --data DIR`
//! can call this on every start.

use crate::admin;
use crate::auth::generate_password;
use crate::config::TrackerConfig;
use crate::org::Org;
use crate::store::Store;
use skein_certs::ca::OrgCa;
use skein_proto::control::NewUser;
use std::net::IpAddr;

/// What initialisation did.
#[derive(Debug, Default)]
pub struct InitReport {
    /// A new CA was created.
    pub created_ca: bool,
    /// A new tracker certificate was issued, with these names.
    pub issued_cert: Option<Vec<String>>,
    /// The first admin account was created with this one-time password.
    pub admin_password: Option<String>,
}

/// Why initialisation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InitError {
    /// The data directory could not be created.
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Certificates failed.
    #[error(transparent)]
    Certs(#[from] skein_certs::CertError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// The organisation failed.
    #[error(transparent)]
    Org(#[from] crate::org::OrgError),
    /// Creating the admin failed.
    #[error(transparent)]
    Admin(#[from] admin::AdminError),
    /// The store serves an organisation this data directory knows nothing of.
    #[error(
        "the store {store} already serves an organisation, and {dir} holds none of its files; start this \
         tracker with --join DIR, DIR being the data directory of one of the organisation's trackers"
    )]
    JoinFirst {
        /// The store's URL, without its password.
        store: String,
        /// The data directory.
        dir: String,
    },
    /// The tracker certificate is missing and no CA key is here to issue it.
    #[error(
        "{cert} is missing, and so is the CA key that issues it ({key}); run once more with --join DIR, DIR \
         holding the organisation's ca.pem, ca.key and org.key, to issue it"
    )]
    NoCaKey {
        /// The tracker certificate.
        cert: String,
        /// The CA key looked for.
        key: String,
    },
}

/// How long a tracker certificate is valid, in days.
pub const TRACKER_CERT_DAYS: u32 = 825;

/// The names the tracker certificate covers: localhost, 127.0.0.1, the
/// listen IP when it is specific, and every public address.
pub fn certificate_names(config: &TrackerConfig) -> Vec<String> {
    let mut names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    let ip = config.listen.ip();
    if !ip.is_unspecified() {
        names.push(ip.to_string());
    }
    for p in &config.public_addrs {
        let p = p.trim();
        let p = p.parse::<IpAddr>().map(|ip| ip.to_string()).unwrap_or_else(|_| p.to_owned());
        if !p.is_empty() {
            names.push(p);
        }
    }
    let mut seen = std::collections::HashSet::new();
    names.retain(|n| seen.insert(n.clone()));
    names
}

/// Makes sure `config.data_dir` holds everything a tracker needs.
pub async fn ensure_initialised(config: &TrackerConfig) -> Result<InitReport, InitError> {
    let mut report = InitReport::default();
    let dir = &config.data_dir;
    std::fs::create_dir_all(dir).map_err(|source| InitError::DataDir { path: dir.display().to_string(), source })?;
    restrict_dir(dir);
    let (ca_cert, ca_key) = (config.ca_cert_path(), config.ca_key_path());
    let store = Store::open(&config.database_url()).await?;
    let fresh = !ca_cert.exists() && !ca_key.exists() && !config.org_key_path().exists();
    if fresh && store.get_setting(crate::org::PUBLIC_KEY).await?.is_some() {
        store.close().await;
        return Err(InitError::JoinFirst {
            store: crate::store::redact_url(&config.database_url()),
            dir: dir.display().to_string(),
        });
    }
    let mut created = None;
    if !ca_cert.exists() && !ca_key.exists() {
        let ca = OrgCa::generate(&config.org, skein_certs::DEFAULT_CA_VALIDITY_DAYS)?;
        ca.save(&ca_cert, &ca_key, false)?;
        report.created_ca = true;
        created = Some(ca);
    }
    let (cert, key) = (config.tracker_cert_path(), config.tracker_key_path());
    if !cert.exists() || !key.exists() {
        // A tracker that joined keeps no CA key: it needs one only here.
        if !ca_key.exists() {
            return Err(InitError::NoCaKey { cert: cert.display().to_string(), key: ca_key.display().to_string() });
        }
        let ca = match created {
            Some(ca) => ca,
            None => OrgCa::load(&ca_cert, &ca_key)?,
        };
        let names = certificate_names(config);
        let issued = ca.issue_tracker_cert(&names, TRACKER_CERT_DAYS)?;
        issued.save(&cert, &key, true)?;
        report.issued_cert = Some(names);
    }
    Org::load_or_init(&store, &config.org, &config.org_key_path()).await?;
    if store.count_users().await? == 0 {
        let password = generate_password();
        let new = NewUser {
            name: "admin".into(),
            display_name: "Administrator".into(),
            password: password.clone(),
            department: None,
            title: None,
            email: None,
            phone: None,
            admin: true,
        };
        match admin::add_user(&store, new, &crate::passwords::Passwords::per_core(config.password_cost.clone())).await {
            Ok(user) => {
                // Printed once on a console: a password its holder must replace.
                store.set_must_change_password(user.id, true).await?;
                report.admin_password = Some(password);
            }
            // Another tracker on the same database won the race.
            Err(admin::AdminError::Store(crate::store::StoreError::Conflict(_))) => {}
            Err(e) => return Err(e.into()),
        }
    }
    store.close().await;
    Ok(report)
}

fn restrict_dir(dir: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Err(e) = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)) {
        tracing::warn!(dir = %dir.display(), error = %e, "could not restrict data directory permissions");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_always_include_loopback_and_listen_ip() {
        let mut c = TrackerConfig::new("/x").listen("198.18.0.5:7400".parse().expect("addr"));
        c.public_addrs = vec!["tracker.example.org".into(), "198.18.0.5".into(), " ".into()];
        assert_eq!(certificate_names(&c), vec!["localhost", "127.0.0.1", "198.18.0.5", "tracker.example.org"]);
        let c = TrackerConfig::new("/x");
        assert_eq!(certificate_names(&c), vec!["localhost", "127.0.0.1"]);
    }
}
