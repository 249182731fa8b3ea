//! Which certificate authorities an HTTPS upstream's certificate must chain
//! to: the public web's (Mozilla's list, built in) unless the upstream names
//! its own in `ca_file`, a PEM bundle, as an upstream behind a private CA
//! must. The file's authorities then replace the public ones for that
//! upstream only, so that a certificate some public CA issued for the same
//! name is not accepted in their place.

use std::path::{Path, PathBuf};

use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// Why an upstream's `ca_file` cannot be used, in words an operator can act on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaFileError {
    /// The file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The `ca_file` as configured.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// A `CERTIFICATE` block is not valid PEM (its base64, or its end line).
    #[error("{}: certificate {n} is not valid PEM ({source})", path.display())]
    NotPem {
        /// The `ca_file` as configured.
        path: PathBuf,
        /// Which certificate of the file, counting from 1.
        n: usize,
        /// What the PEM reader said.
        source: rustls::pki_types::pem::Error,
    },
    /// A certificate that is not one rustls can trust as an authority.
    #[error("{}: certificate {n} cannot be used as an authority ({source})", path.display())]
    NotAnAuthority {
        /// The `ca_file` as configured.
        path: PathBuf,
        /// Which certificate of the file, counting from 1.
        n: usize,
        /// What rustls said.
        source: rustls::Error,
    },
    /// The file holds no `CERTIFICATE` block at all.
    #[error("{} holds no PEM certificate (\"-----BEGIN CERTIFICATE-----\"): give the CA certificate that signs the upstream's certificate", path.display())]
    NoCertificate {
        /// The `ca_file` as configured.
        path: PathBuf,
    },
}

/// The authorities in the PEM file at `path`: every `CERTIFICATE` block in it
/// (other blocks, such as a key, are skipped).
pub fn load_roots(path: &Path) -> Result<RootCertStore, CaFileError> {
    let bytes = std::fs::read(path).map_err(|source| CaFileError::Read {
        path: path.to_owned(),
        source,
    })?;
    let mut roots = RootCertStore::empty();
    for (i, cert) in CertificateDer::pem_slice_iter(&bytes).enumerate() {
        let cert = cert.map_err(|source| CaFileError::NotPem {
            path: path.to_owned(),
            n: i + 1,
            source,
        })?;
        roots
            .add(cert)
            .map_err(|source| CaFileError::NotAnAuthority {
                path: path.to_owned(),
                n: i + 1,
                source,
            })?;
    }
    if roots.is_empty() {
        return Err(CaFileError::NoCertificate {
            path: path.to_owned(),
        });
    }
    Ok(roots)
}

/// The TLS client configuration for an upstream that trusts only `roots`,
/// on the process's one crypto provider (aws-lc-rs).
pub(crate) fn client_config(roots: RootCertStore) -> Result<rustls::ClientConfig, String> {
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

#[cfg(test)]
mod tests;
