//! How a message leaves: SMTP through lettre (STARTTLS required, implicit TLS, or plain on
//! loopback only), or an `.eml` file in the outbox.
//!
//! Secrets: the SMTP password is read from an environment variable or a file named in the
//! config, held only to build lettre's credentials, and never formatted into an error, a log
//! line or a ledger row.
//!
//! Must not: compose or render a message, decide whether to send it (the sent-ledger is
//! `mail`'s), or print or store the password.

use std::path::{Path, PathBuf};
use std::time::Duration;

use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{Message, SmtpTransport, Transport};

use crate::config::SmtpConfig;

#[derive(Debug, thiserror::Error)]
pub enum DeliverError {
    #[error("[mail.smtp] {0}")]
    Config(String),
    #[error("cannot write {}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// TLS as configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    StartTls,
    Implicit,
    None,
}

/// A resolved SMTP relay (the password is inside lettre's transport only).
pub struct Smtp {
    pub host: String,
    pub port: u16,
    pub tls: TlsMode,
    transport: SmtpTransport,
}

impl std::fmt::Debug for Smtp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Smtp({}:{}, {:?})", self.host, self.port, self.tls)
    }
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .trim_matches(|c| c == '[' || c == ']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The password from `password_env` or `password_file` (never from argv or the config text).
fn password(c: &SmtpConfig) -> Result<Option<String>, DeliverError> {
    match (&c.password_env, &c.password_file) {
        (Some(_), Some(_)) => Err(DeliverError::Config(
            "set password_env or password_file, not both".into(),
        )),
        (Some(var), None) => match std::env::var(var) {
            Ok(p) if !p.is_empty() => Ok(Some(p)),
            _ => Err(DeliverError::Config(format!(
                "password_env names {var}, which is not set (export it in the job's environment)"
            ))),
        },
        (None, Some(f)) => std::fs::read_to_string(f)
            .map(|p| Some(p.trim_end_matches(['\r', '\n']).to_string()))
            .map_err(|e| {
                DeliverError::Config(format!("cannot read password_file {}: {e}", f.display()))
            }),
        (None, None) => Ok(None),
    }
}

impl Smtp {
    pub fn new(c: &SmtpConfig) -> Result<Smtp, DeliverError> {
        let tls = match c.tls.as_deref().unwrap_or("starttls") {
            "starttls" => TlsMode::StartTls,
            "implicit" => TlsMode::Implicit,
            "none" => TlsMode::None,
            other => {
                return Err(DeliverError::Config(format!(
                    "tls = {other:?}: use \"starttls\", \"implicit\" or \"none\""
                )));
            }
        };
        if tls == TlsMode::None && !is_loopback(&c.host) {
            return Err(DeliverError::Config(format!(
                "tls = \"none\" is allowed only to a loopback host, not {:?}: mail and any \
                 password would cross the network in clear; use \"starttls\" or \"implicit\"",
                c.host
            )));
        }
        let port = c.port.unwrap_or(match tls {
            TlsMode::StartTls => 587,
            TlsMode::Implicit => 465,
            TlsMode::None => 25,
        });
        let mut params = TlsParameters::builder(c.host.clone());
        if let Some(ca) = &c.ca_file {
            let pem = std::fs::read(ca).map_err(|e| {
                DeliverError::Config(format!("cannot read ca_file {}: {e}", ca.display()))
            })?;
            let cert = Certificate::from_pem(&pem).map_err(|e| {
                DeliverError::Config(format!(
                    "ca_file {} is not a PEM certificate: {e}",
                    ca.display()
                ))
            })?;
            params = params.add_root_certificate(cert);
        }
        let params = || {
            params
                .clone()
                .build()
                .map_err(|e| DeliverError::Config(format!("TLS for {}: {e}", c.host)))
        };
        let mut b = SmtpTransport::builder_dangerous(c.host.clone())
            .port(port)
            .timeout(Some(Duration::from_secs(c.timeout_secs.unwrap_or(30))));
        b = match tls {
            TlsMode::StartTls => b.tls(Tls::Required(params()?)),
            TlsMode::Implicit => b.tls(Tls::Wrapper(params()?)),
            TlsMode::None => b.tls(Tls::None),
        };
        match (&c.username, password(c)?) {
            (Some(u), Some(p)) => b = b.credentials(Credentials::new(u.clone(), p)),
            (Some(_), None) => {
                return Err(DeliverError::Config(
                    "username is set but no password: set password_env or password_file".into(),
                ));
            }
            (None, Some(_)) => {
                return Err(DeliverError::Config(
                    "a password is set but no username".into(),
                ));
            }
            (None, None) => {}
        }
        Ok(Smtp {
            host: c.host.clone(),
            port,
            tls,
            transport: b.build(),
        })
    }

    /// One attempt. The error text is lettre's (server replies, I/O), never the password;
    /// `true` with it when the server refused for good (a 5xx reply: retrying cannot help).
    pub fn send(&self, m: &Message) -> Result<(), (String, bool)> {
        self.transport.send(m).map(|_| ()).map_err(|e| {
            (
                format!("{}:{}: {e}", self.host, self.port),
                e.is_permanent(),
            )
        })
    }
}

/// Writes `m` as `dir/name.eml`, atomically (temp file + rename).
pub fn write_eml(dir: &Path, name: &str, m: &Message) -> Result<PathBuf, DeliverError> {
    let path = dir.join(format!("{name}.eml"));
    crate::lake::io::write_file_atomic(&path, &m.formatted()).map_err(|source| {
        DeliverError::Write {
            path: path.clone(),
            source,
        }
    })?;
    Ok(path)
}
