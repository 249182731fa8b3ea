use super::target_of;
use crate::jsonrpc::Message;

fn target(body: &str) -> Option<(&'static str, String)> {
    let msg = Message::parse(body.as_bytes()).expect("a message");
    target_of(&msg).map(|(k, n)| (k, n.into_owned()))
}

#[test]
fn the_name_of_a_tool_prompt_or_resource_is_read_and_the_arguments_skipped() {
    assert_eq!(
        target(
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"arguments":{"deep":[1,{"x":"y"}]},"name":"echo"}}"#
        ),
        Some(("tool", "echo".into()))
    );
    assert_eq!(
        target(
            r#"{"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{"name":"gr\u00fc\u00dfe"}}"#
        ),
        Some(("prompt", "grüße".into()))
    );
    assert_eq!(
        target(
            r#"{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"file:///a","name":7}}"#
        ),
        Some(("resource", "file:///a".into()))
    );
    assert_eq!(
        target(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"name":"echo"}}"#),
        None
    );
    assert_eq!(
        target(r#"{"jsonrpc":"2.0","method":"tools/call","params":{"name":"echo"}}"#),
        None
    );
}

/// The policy sees the name the whole-value reading sees: a repeated key is
/// its last value (never "no name", which would mean "no per-tool rule"), a
/// field that is not a string is no name, and other fields do not matter.
#[test]
fn unusual_params_are_read_as_a_whole_value_would_read_them() {
    assert_eq!(
        target(
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"allowed","name":"secret"}}"#
        ),
        Some(("tool", "secret".into()))
    );
    assert_eq!(
        target(
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","uri":5}}"#
        ),
        Some(("tool", "echo".into()))
    );
    assert_eq!(
        target(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":["echo"]}}"#),
        None
    );
    assert_eq!(
        target(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":[1,2]}"#),
        None
    );
}
