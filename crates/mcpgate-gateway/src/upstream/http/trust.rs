//! Which certificate authorities an HTTPS upstream's certificate must chain
//! to: the public web's (Mozilla's list, built in) unless the upstream names
//! its own in `ca_file`, a PEM bundle, as an upstream behind a private CA
//! must. The file's authorities then replace the public ones for that
//! upstream only, so that a certificate some public CA issued for the same
//! name is not accepted in their place.

use std::path::Path;

use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// The authorities in the PEM file at `path`: every `CERTIFICATE` block in it
/// (other blocks, such as a key, are skipped). An error says what is wrong
/// with the file in words an operator can act on.
pub fn load_roots(path: &Path) -> Result<RootCertStore, String> {
    let shown = path.display();
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    let mut roots = RootCertStore::empty();
    for (n, cert) in CertificateDer::pem_slice_iter(&bytes).enumerate() {
        let cert =
            cert.map_err(|e| format!("{shown}: certificate {} is not valid PEM ({e})", n + 1))?;
        roots.add(cert).map_err(|e| {
            format!(
                "{shown}: certificate {} cannot be used as an authority ({e})",
                n + 1
            )
        })?;
    }
    if roots.is_empty() {
        return Err(format!(
            "{shown} holds no PEM certificate (\"-----BEGIN CERTIFICATE-----\"): give the CA certificate that signs the upstream's certificate"
        ));
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
