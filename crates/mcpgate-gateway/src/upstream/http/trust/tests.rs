use std::io::Write as _;

use super::{client_config, load_roots};

/// A self-signed CA certificate (P-256, valid until 2126), public test data.
const CA: &str = "-----BEGIN CERTIFICATE-----
MIIBmzCCAUGgAwIBAgIUbpRl51qVzOPPUf7qbY4evR0L5nkwCgYIKoZIzj0EAwIw
GjEYMBYGA1UEAwwPbWNwZ2F0ZSB0ZXN0IENBMCAXDTI2MTIwNzE2NTEwMFoYDzIx
MjYxMTEzMTY1MTAwWjAaMRgwFgYDVQQDDA9tY3BnYXRlIHRlc3QgQ0EwWTATBgcq
hkjOPQIBBggqhkjOPQMBBwNCAAS4Uh1iAm3rpaHtccv/c5Ig656ybVZR2R+0F2Lz
iyg2YjyfXU7tyl+3On0PcK6+g/HDFFiW3E54zqnDIuO/LbEbo2MwYTAdBgNVHQ4E
FgQUAxDoa0u9H6R6/QaJyi9ngnZ89LEwHwYDVR0jBBgwFoAUAxDoa0u9H6R6/QaJ
yi9ngnZ89LEwDwYDVR0TAQH/BAUwAwEB/zAOBgNVHQ8BAf8EBAMCAQYwCgYIKoZI
zj0EAwIDSAAwRQIgeK0VvCq+8Jlo7KBwdCZAi0znnLY+76AbS8TcCPalfjcCIQCt
tu1NqmRw4hvQaP/kLOh5hccQKsNa1yDluDM7eXjdmQ==
-----END CERTIFICATE-----
";

fn file_with(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().expect("temp file");
    f.write_all(text.as_bytes()).expect("write");
    f
}

#[test]
fn every_certificate_in_the_file_becomes_an_authority_and_other_blocks_are_skipped() {
    let one = load_roots(file_with(CA).path()).expect("one CA");
    assert_eq!(one.len(), 1);
    let key = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n";
    let bundle = format!("# a bundle\n{CA}{key}\n{CA}");
    let two = load_roots(file_with(&bundle).path()).expect("a bundle");
    assert_eq!(two.len(), 2);
    assert!(client_config(two).is_ok());
}

#[test]
fn a_file_without_a_usable_certificate_is_refused_with_the_reason() {
    let missing = std::path::Path::new("/nonexistent/mcpgate-ca.pem");
    let e = load_roots(missing).expect_err("missing file").to_string();
    assert!(
        e.starts_with("cannot read /nonexistent/mcpgate-ca.pem:"),
        "{e}"
    );

    let e = load_roots(file_with("").path())
        .expect_err("empty file")
        .to_string();
    assert!(e.contains("holds no PEM certificate"), "{e}");

    let der_not_pem = file_with("MIIBmzCCAUGgAwIBAgIUbpRl51qVzOPPUf7qbY4evR0L5nkw\n");
    let e = load_roots(der_not_pem.path())
        .expect_err("no PEM armour")
        .to_string();
    assert!(e.contains("holds no PEM certificate"), "{e}");

    let bad_base64 = "-----BEGIN CERTIFICATE-----\n!!!not base64!!!\n-----END CERTIFICATE-----\n";
    let e = load_roots(file_with(bad_base64).path())
        .expect_err("bad base64")
        .to_string();
    assert!(e.contains("certificate 1 is not valid PEM"), "{e}");

    // Well-formed PEM whose content is not a certificate.
    let not_a_cert =
        format!("{CA}-----BEGIN CERTIFICATE-----\nAAECAwQ=\n-----END CERTIFICATE-----\n");
    let e = load_roots(file_with(&not_a_cert).path())
        .expect_err("not a certificate")
        .to_string();
    assert!(
        e.contains("certificate 2 cannot be used as an authority"),
        "{e}"
    );
}
