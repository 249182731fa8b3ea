use std::time::{Duration, SystemTime};

use super::*;
use crate::audit::{AuditFilter, NewAuditRecord};
use crate::oauth::SigningKeyRow;
use crate::{scopes, test_sqlite_store, test_store};

fn master() -> MasterKey {
    MasterKey::from_bytes(&[7u8; 32], "test").unwrap()
}

fn kid_aad(kid: &str) -> Vec<u8> {
    format!("test signing key {kid}").into_bytes()
}

/// A SQLite store with a row or more in the tables that matter, sealed values included.
async fn filled() -> (tempfile::TempDir, Store) {
    let (dir, s) = test_sqlite_store().await;
    let k = master();
    s.create_api_key("ci", &crate::subject("robot"), &scopes("notes:read"), None)
        .await
        .unwrap();
    s.add_user("ann", "a long passphrase", &scopes("*"))
        .await
        .unwrap();
    s.vault_put(&k, "ann", "weather", "ann-weather-key")
        .await
        .unwrap();
    let sealed = k.seal(b"pkcs8 bytes", &kid_aad("k1")).unwrap();
    s.add_signing_key(
        &SigningKeyRow::new("k1".into(), "ES256".into(), sealed),
        SystemTime::now() + Duration::from_secs(60),
    )
    .await
    .unwrap();
    for who in ["ann", "bob"] {
        let mut r = NewAuditRecord::new("sign_in");
        r.subject = Some(who.into());
        s.audit_append(&r).await.unwrap();
    }
    (dir, s)
}

#[tokio::test]
async fn a_copy_moves_every_row_and_every_sealed_value_opens() {
    let (_src_dir, src) = filled().await;
    let (_db, dst) = test_store().await;
    let report = src
        .copy_into(&dst, false, Some(&master()), &kid_aad)
        .await
        .unwrap();
    let count = |t: &str| report.tables.iter().find(|c| c.table == t).unwrap().rows;
    assert_eq!(
        (count("api_keys"), count("users"), count("vault_secrets")),
        (1, 1, 1)
    );
    assert_eq!((count("audit_log"), count("audit_chain")), (2, 1));
    // The vault secret and the signing key.
    assert_eq!(report.sealed_opened, 2);
    // What the API reads back in the target.
    assert!(
        dst.check_password("ann", "a long passphrase")
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(
        dst.vault_get(&master(), "ann", "weather")
            .await
            .unwrap()
            .unwrap()
            .expose(),
        "ann-weather-key"
    );
    let v = dst.audit_verify().await.unwrap();
    assert_eq!((v.checked, v.broken), (2, None));
    // The chain goes on from where the source left it.
    dst.audit_append(&NewAuditRecord::new("sign_in"))
        .await
        .unwrap();
    assert_eq!(dst.audit_verify().await.unwrap().broken, None);
    assert_eq!(
        dst.audit_list(&AuditFilter::default()).await.unwrap().len(),
        3
    );

    // A target with rows is refused, naming the first table that has some.
    let e = src
        .copy_into(&dst, false, Some(&master()), &kid_aad)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("api_keys") && e.contains("not empty"), "{e}");
    // Unless told to replace it; and back the other way.
    let (_back_dir, back) = test_sqlite_store().await;
    dst.copy_into(&back, false, Some(&master()), &kid_aad)
        .await
        .unwrap();
    assert_eq!(back.list_api_keys().await.unwrap().len(), 1);
    src.copy_into(&dst, true, Some(&master()), &kid_aad)
        .await
        .unwrap();
    assert_eq!(
        dst.audit_list(&AuditFilter::default()).await.unwrap().len(),
        2
    );
}

#[tokio::test]
async fn a_wrong_master_key_is_named_after_the_copy() {
    let (_src_dir, src) = filled().await;
    let (_db, dst) = test_store().await;
    let wrong = MasterKey::from_bytes(&[9u8; 32], "wrong").unwrap();
    let e = src
        .copy_into(&dst, false, Some(&wrong), &kid_aad)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("the vault secret of \"ann\""), "{e}");
}

#[tokio::test]
async fn without_a_master_key_only_a_store_without_sealed_values_is_copied() {
    let (_src_dir, src) = filled().await;
    let (_db, dst) = test_store().await;
    let e = src
        .copy_into(&dst, false, None, &kid_aad)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("2 rows with sealed values"), "{e}");
    assert_eq!(dst.list_api_keys().await.unwrap().len(), 0);
    let (_d, plain) = test_sqlite_store().await;
    plain
        .create_api_key("k", &crate::subject("s"), &scopes(""), None)
        .await
        .unwrap();
    let report = plain.copy_into(&dst, false, None, &kid_aad).await.unwrap();
    assert_eq!(report.sealed_opened, 0);
    assert_eq!(dst.list_api_keys().await.unwrap().len(), 1);
}
