use super::*;

fn key(byte: u8) -> MasterKey {
    MasterKey::from_bytes(&[byte; 32], "test").unwrap()
}

#[test]
fn round_trips_and_binds_the_aad() {
    let k = key(7);
    let sealed = k.seal(b"secret", b"row-1").unwrap();
    assert_eq!(k.open(&sealed, b"row-1").unwrap(), b"secret");
    assert!(matches!(k.open(&sealed, b"row-2"), Err(SealError::Damaged)));
    // A fresh nonce each time.
    assert_ne!(sealed, k.seal(b"secret", b"row-1").unwrap());
}

#[test]
fn a_wrong_key_or_damage_is_an_error_not_a_panic() {
    let sealed = key(1).seal(b"secret", b"a").unwrap();
    let other = key(2);
    assert!(matches!(
        other.open(&sealed, b"a"),
        Err(SealError::WrongKey { .. })
    ));
    let k = key(1);
    assert!(matches!(
        k.open(&sealed[..10], b"a"),
        Err(SealError::Damaged)
    ));
    let mut flipped = sealed.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 1;
    assert!(matches!(k.open(&flipped, b"a"), Err(SealError::Damaged)));
    assert!(matches!(k.open(&[], b"a"), Err(SealError::Damaged)));
}

#[test]
fn bad_key_text_is_refused() {
    assert!(matches!(
        MasterKey::from_base64("not base64!", "env"),
        Err(SealError::BadKey { .. })
    ));
    assert!(MasterKey::from_base64(&STANDARD.encode([0u8; 16]), "env").is_err());
}

#[test]
fn the_key_file_is_created_once_with_mode_0600() {
    use std::os::unix::fs::PermissionsExt as _;
    // The environment variable would take precedence; tests never set it.
    if std::env::var(MASTER_KEY_ENV).is_ok() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let a = MasterKey::load(dir.path()).unwrap();
    let mode = std::fs::metadata(dir.path().join(MASTER_KEY_FILE))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let b = MasterKey::load(dir.path()).unwrap();
    let sealed = a.seal(b"x", b"").unwrap();
    assert_eq!(b.open(&sealed, b"").unwrap(), b"x");
}
