use super::*;

#[test]
fn routing_values() {
    assert_eq!(routing_value("echo"), "echo");
    assert_eq!(routing_value("demo://notes/1"), "demo://notes/1");
    let v = routing_value("café");
    let s = v.to_str().unwrap();
    let b64 = s
        .strip_prefix("=?base64?")
        .unwrap()
        .strip_suffix("?=")
        .unwrap();
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    assert_eq!(decoded, "café".as_bytes());
    assert!(
        routing_value(" padded")
            .to_str()
            .unwrap()
            .starts_with("=?base64?")
    );
}
