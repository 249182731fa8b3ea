use super::*;

fn subject(raw: &str) -> Subject {
    Subject::parse(raw).expect("test subject is valid")
}

fn title(raw: &str) -> NoteTitle {
    NoteTitle::parse(raw).expect("test title is valid")
}

fn content(raw: &str) -> NoteContent {
    NoteContent::parse(raw.to_owned()).expect("test content is valid")
}

#[tokio::test]
async fn creates_missing_data_dir_and_survives_reopen() {
    let root = tempfile::tempdir().expect("tempdir");
    let data_dir = root.path().join("nested").join("data");
    let alice = subject("alice");
    let bob = subject("bob");

    let store = Store::open(&data_dir).await.expect("open");
    assert!(data_dir.join(DB_FILE).exists());
    let first = store
        .insert_note(&alice, &title("one"), &content("first"))
        .await
        .expect("insert");
    store
        .insert_note(&bob, &title("bob's"), &content("private"))
        .await
        .expect("insert");
    store.record_call(&alice, "whoami").await.expect("record");
    store.record_call(&alice, "whoami").await.expect("record");
    store
        .record_call(&alice, "list_secure_notes")
        .await
        .expect("record");
    store.close().await;
    drop(store);

    let store = Store::open(&data_dir).await.expect("reopen");
    let notes = store.notes_of(&alice).await.expect("list");
    assert_eq!(notes.len(), 1);
    assert_eq!(notes[0], first);
    assert_eq!(notes[0].content, "first");
    assert_eq!(store.note_count(&bob).await.expect("count"), 1);
    assert_eq!(
        store.usage_of(&alice).await.expect("usage"),
        vec![
            Usage {
                tool: "list_secure_notes".into(),
                calls: 1
            },
            Usage {
                tool: "whoami".into(),
                calls: 2
            },
        ]
    );
    assert!(store.usage_of(&bob).await.expect("usage").is_empty());
    store.close().await;
}

#[tokio::test]
async fn a_note_is_only_readable_by_its_owner() {
    let root = tempfile::tempdir().expect("tempdir");
    let store = Store::open(root.path()).await.expect("open");
    let alice = subject("alice");
    let bob = subject("bob");
    let note = store
        .insert_note(&alice, &title("secret"), &content("for alice"))
        .await
        .expect("insert");

    assert_eq!(
        store.note_of(&alice, note.id).await.expect("read"),
        Some(note.clone())
    );
    assert_eq!(store.note_of(&bob, note.id).await.expect("read"), None);
    assert_eq!(
        store.note_of(&alice, note.id + 100).await.expect("read"),
        None
    );
    assert!(store.notes_of(&bob).await.expect("list").is_empty());
    store.close().await;
}

#[tokio::test]
async fn database_files_are_private_and_old_ones_are_narrowed() {
    use std::os::unix::fs::PermissionsExt as _;
    let root = tempfile::tempdir().expect("tempdir");
    let data_dir = root.path().join("data");
    let mode = |p: &Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
    let store = Store::open(&data_dir).await.expect("open");
    store
        .record_call(&subject("a"), "whoami")
        .await
        .expect("record");
    assert_eq!(mode(&data_dir), 0o700);
    for f in [DB_FILE, "demo.sqlite-wal", "demo.sqlite-shm"] {
        assert_eq!(mode(&data_dir.join(f)), 0o600, "{f}");
    }
    store.close().await;
    drop(store);
    // A database an older release left world-readable.
    let db = data_dir.join(DB_FILE);
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let store = Store::open(&data_dir).await.expect("reopen");
    assert_eq!(mode(&db), 0o600);
    store.close().await;
}
