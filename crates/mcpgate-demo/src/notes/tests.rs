use super::*;

#[test]
fn titles() {
    assert_eq!(
        NoteTitle::parse("  groceries ").expect("valid").as_str(),
        "groceries"
    );
    assert!(NoteTitle::parse("").is_err());
    assert!(NoteTitle::parse(" \t\n").is_err());
    assert!(NoteTitle::parse(&"é".repeat(200)).is_ok());
    let error = NoteTitle::parse(&"é".repeat(201)).expect_err("too long");
    assert_eq!(
        error.to_string(),
        "the title has 201 characters; shorten it to at most 200"
    );
}

#[test]
fn contents() {
    assert!(NoteContent::parse(String::new()).is_ok());
    assert!(NoteContent::parse("x".repeat(MAX_CONTENT_BYTES)).is_ok());
    let error = NoteContent::parse("x".repeat(MAX_CONTENT_BYTES + 1)).expect_err("too big");
    assert!(error.to_string().contains("65537 bytes"), "{error}");
}

#[test]
fn uris() {
    assert_eq!(note_uri(42), "user://notes/42");
    assert_eq!(parse_note_uri("user://notes/42"), Some(42));
    for not_ours in [
        "user://notes/",
        "user://notes/0",
        "user://notes/+4",
        "user://notes/-4",
        "user://notes/4/x",
        "user://notes/99999999999999999999",
        "user://profile",
        "file:///etc/passwd",
    ] {
        assert_eq!(parse_note_uri(not_ours), None, "{not_ours}");
    }
}

#[test]
fn ids() {
    assert_eq!(parse_note_id(" 7 ").expect("valid"), 7);
    assert!(parse_note_id("0").is_err());
    assert!(parse_note_id("seven").is_err());
}
