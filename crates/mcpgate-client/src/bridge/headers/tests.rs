use super::*;

#[test]
fn parses_name_and_value() {
    let (n, v) = parse_header("X-API-Key: mcpg_secret").unwrap();
    assert_eq!(n.as_str(), "x-api-key");
    assert_eq!(v.to_str().unwrap(), "mcpg_secret");
    assert!(v.is_sensitive());
    let (n, v) = parse_header("Authorization:Bearer a:b").unwrap();
    assert_eq!(n.as_str(), "authorization");
    assert_eq!(v.to_str().unwrap(), "Bearer a:b");
}

#[test]
fn refuses_bad_headers_without_showing_values() {
    assert!(matches!(
        parse_header("novalue"),
        Err(HeaderError::NoColon { .. })
    ));
    assert!(matches!(
        parse_header("bad name: x"),
        Err(HeaderError::BadName { .. })
    ));
    let e = parse_header("X-Key: sec\u{7}ret").unwrap_err();
    assert!(matches!(e, HeaderError::BadValue { .. }));
    assert!(!e.to_string().contains("sec"), "{e}");
    assert!(matches!(
        parse_header("Mcp-Session-Id: 1"),
        Err(HeaderError::Managed { .. })
    ));
}

#[test]
fn header_file_lines() {
    let text = "# comment\n\nX-API-Key: k1\n  Authorization: Bearer t \n";
    let got = parse_header_lines(text, "h.txt").unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(got[1].1.to_str().unwrap(), "Bearer t");
    let e = parse_header_lines("X-A: 1\noops\n", "h.txt").unwrap_err();
    assert_eq!(e.to_string(), "h.txt line 2: expected `Name: value`");
}
