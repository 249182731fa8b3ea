use super::*;

#[test]
fn formats_are_anchored_and_explained() {
    let slot = VaultSlot::new(
        "weather",
        "Weather API key",
        Some("wx-[a-z0-9]{8}"),
        Some("it starts with wx- and has 8 more characters"),
    )
    .unwrap();
    assert!(slot.refuse("wx-abcd1234").is_none());
    let why = slot.refuse("prefix wx-abcd1234").unwrap();
    assert!(why.contains("starts with wx-"), "{why}");
    assert!(slot.refuse("").unwrap().contains("Paste"));
    let plain = VaultSlot::new("w", "key", Some("k[0-9]+"), None).unwrap();
    assert!(plain.refuse("k12x").unwrap().contains("k[0-9]+"));
    assert!(
        VaultSlot::new("w", "key", None, None)
            .unwrap()
            .refuse("anything")
            .is_none()
    );
    assert!(
        VaultSlot::new("w", "key", Some("("), None)
            .unwrap_err()
            .to_string()
            .contains("regular expression")
    );
}

#[test]
fn refusals_use_the_right_article() {
    let why = |label: &str| {
        VaultSlot::new("w", label, Some("k"), None)
            .unwrap()
            .refuse("x")
            .unwrap()
    };
    assert!(
        why("Acme API key").starts_with("That does not look like an Acme API key:"),
        "{}",
        why("Acme API key")
    );
    assert!(why("Weather API key").starts_with("That does not look like a Weather API key:"));
    assert!(why("API key").starts_with("That does not look like an API key:"));
    assert!(why("SSH key").starts_with("That does not look like an SSH key:"));
    assert!(why("URL token").starts_with("That does not look like a URL token:"));
    assert!(why("user token").starts_with("That does not look like a user token:"));
    assert!(why("hour pass").starts_with("That does not look like an hour pass:"));
}
