use serde_json::json;

use super::*;

#[test]
fn elicit_flag_values() {
    assert!(matches!(
        ElicitAnswer::parse("decline"),
        Ok(ElicitAnswer::Decline)
    ));
    assert!(matches!(
        ElicitAnswer::parse(" cancel "),
        Ok(ElicitAnswer::Cancel)
    ));
    assert!(matches!(ElicitAnswer::parse("ask"), Ok(ElicitAnswer::Ask)));
    match ElicitAnswer::parse(r#"{"name": "Ada"}"#) {
        Ok(ElicitAnswer::Accept(o)) => assert_eq!(o["name"], "Ada"),
        other => panic!("{other:?}"),
    }
    // Only an object is content; anything else is a usage error.
    assert!(matches!(
        ElicitAnswer::parse("[1]"),
        Err(crate::ClientError::Config(_))
    ));
    assert!(matches!(
        ElicitAnswer::parse("maybe"),
        Err(crate::ClientError::Config(_))
    ));
}

#[test]
fn roots_are_file_uris() {
    assert_eq!(
        CommandLineInput::root_uri("file:///srv/x").unwrap(),
        "file:///srv/x"
    );
    let u = CommandLineInput::root_uri("/tmp/a b").unwrap();
    assert_eq!(u, "file:///tmp/a%20b");
    assert!(
        CommandLineInput::root_uri("rel")
            .unwrap()
            .starts_with("file:///")
    );
}

#[tokio::test]
async fn answers_what_it_declares_and_refuses_the_rest() {
    let none = CommandLineInput {
        roots: vec![],
        elicit: ElicitAnswer::Decline,
    };
    assert_eq!(none.capabilities(), json!({"elicitation": {"form": {}}}));
    assert!(none.answer("roots/list", &json!({})).await.is_err());
    assert!(
        none.answer("sampling/createMessage", &json!({}))
            .await
            .is_err()
    );
    let a = none
        .answer("elicitation/create", &json!({"message": "ok?"}))
        .await
        .unwrap();
    assert_eq!(a, json!({"action": "decline"}));
    let url_mode = none
        .answer(
            "elicitation/create",
            &json!({"mode": "url", "url": "https://x"}),
        )
        .await;
    assert!(url_mode.is_err());

    let some = CommandLineInput {
        roots: vec!["file:///w".into()],
        elicit: ElicitAnswer::Accept(json!({"n": 1}).as_object().unwrap().clone()),
    };
    assert!(some.capabilities().get("roots").is_some());
    let r = some.answer("roots/list", &json!(null)).await.unwrap();
    assert_eq!(r, json!({"roots": [{"uri": "file:///w"}]}));
    let a = some
        .answer("elicitation/create", &json!({"message": "n?"}))
        .await
        .unwrap();
    assert_eq!(a, json!({"action": "accept", "content": {"n": 1}}));
}
