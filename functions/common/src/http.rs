//! Our own HTTP clients (Jenkins, and every later upstream) share one TLS setup per
//! process: Mozilla's root certificates compiled in (webpki-roots), plus the PEM bundle
//! that `EXTRA_CA_CERTS` names, for a Jenkins behind a private CA.
//!
//! Why not the system store: loading it reads and parses a directory of files on every
//! cold start (it was most of our init time), and a Lambda image cannot add a private CA
//! to it anyway; a bundle in a layer or the zip, named by `EXTRA_CA_CERTS`, can.

use std::sync::{Arc, OnceLock};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

use crate::config::{optional, ConfigError};

/// Path of a PEM file with extra trusted root certificates.
pub const EXTRA_CA_CERTS: &str = "EXTRA_CA_CERTS";

static TLS: OnceLock<Result<rustls::ClientConfig, String>> = OnceLock::new();

/// A reqwest client builder with the shared TLS setup; the caller adds timeouts and
/// redirect rules.
pub fn client_builder() -> Result<reqwest::ClientBuilder, ConfigError> {
    let tls = TLS
        .get_or_init(|| tls_config(optional(EXTRA_CA_CERTS).as_deref()))
        .clone()
        .map_err(|reason| ConfigError::Invalid {
            name: EXTRA_CA_CERTS,
            reason,
        })?;
    Ok(reqwest::Client::builder().tls_backend_preconfigured(tls))
}

/// Builds the client from `builder`, naming the client in the error.
pub fn build(
    builder: reqwest::ClientBuilder,
    name: &'static str,
) -> Result<reqwest::Client, ConfigError> {
    builder.build().map_err(|err| ConfigError::Invalid {
        name,
        reason: format!("cannot build the HTTP client: {err}"),
    })
}

/// What went wrong with a request: its kind (`timed out`, `unreachable`, `request
/// failed`) and its causes. reqwest's own message names the URL, whose query may hold a
/// token, so it is left out.
pub fn describe_error(err: &reqwest::Error) -> String {
    let kind = if err.is_timeout() {
        "timed out"
    } else if err.is_connect() {
        "unreachable"
    } else {
        "request failed"
    };
    let mut text = kind.to_owned();
    append_causes(err, &mut text);
    text
}

/// An error and its causes on one line.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    append_causes(err, &mut text);
    text
}

fn append_causes(err: &dyn std::error::Error, text: &mut String) {
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
}

fn tls_config(extra_ca_file: Option<&str>) -> Result<rustls::ClientConfig, String> {
    let mut roots =
        rustls::RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = extra_ca_file {
        let pem = std::fs::read(path).map_err(|err| format!("cannot read {path}: {err}"))?;
        let certs = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|err| format!("{path} is not a PEM certificate bundle: {err}"))?;
        if certs.is_empty() {
            return Err(format!("{path} holds no PEM certificate"));
        }
        for cert in certs {
            roots
                .add(cert)
                .map_err(|err| format!("{path}: a certificate cannot be used as a root: {err}"))?;
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|err| err.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mozilla_roots_are_always_there() {
        let config = tls_config(None).unwrap();
        assert_eq!(config.alpn_protocols.len(), 2);
    }

    #[test]
    fn a_bad_extra_bundle_is_a_clear_error() {
        let missing = tls_config(Some("/nonexistent/ca.pem")).unwrap_err();
        assert!(missing.contains("/nonexistent/ca.pem"), "{missing}");

        let dir = std::env::temp_dir().join(format!("spigot-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "no certificates here\n").unwrap();
        let error = tls_config(Some(empty.to_str().unwrap())).unwrap_err();
        assert!(error.contains("no PEM certificate"), "{error}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
