use super::*;

#[test]
fn splits_across_chunks_and_line_endings() {
    let mut p = Parser::new(1024);
    assert!(
        p.feed(b"event: endpoint\r\ndata: /messages?s")
            .unwrap()
            .is_empty()
    );
    let ev = p
        .feed(b"=1\r\n\r\n: comment\nid: 4\nretry: 250\ndata: a\ndata: b\n\n")
        .unwrap();
    assert_eq!(ev.len(), 2);
    assert_eq!(ev[0].event, "endpoint");
    assert_eq!(&ev[0].data[..], b"/messages?s=1");
    assert_eq!(
        ev[1],
        Event {
            event: String::new(),
            data: Bytes::from_static(b"a\nb"),
            id: Some("4".into()),
            retry: Some(250),
        }
    );
    assert!(ev[1].is_message());
    assert!(!ev[0].is_message());
}

#[test]
fn crlf_split_between_chunks_is_one_line_end() {
    let mut p = Parser::new(1024);
    assert!(p.feed(b"data: x\r").unwrap().is_empty());
    assert!(
        p.feed(b"\n").unwrap().is_empty(),
        "the \\n completes \\r\\n, not an empty line"
    );
    let ev = p.feed(b"\r\n").unwrap();
    assert_eq!(ev.len(), 1);
    assert_eq!(&ev[0].data[..], b"x");
}

#[test]
fn a_lone_cr_at_a_chunk_end_dispatches_at_once() {
    let mut p = Parser::new(1024);
    let ev = p.feed(b"data: x\r\r").unwrap();
    assert_eq!(ev.len(), 1, "no need to wait for the next chunk");
    assert!(p.feed(b"data: y\r\r").unwrap().len() == 1);
}

#[test]
fn priming_event_has_an_id_and_no_message() {
    let mut p = Parser::new(1024);
    let ev = p.feed(b"id: 0\ndata:\n\n").unwrap();
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].id.as_deref(), Some("0"));
    assert!(!ev[0].is_message());
}

#[test]
fn an_id_with_nul_is_ignored() {
    let mut p = Parser::new(1024);
    let ev = p.feed(b"id: a\0b\ndata: x\n\n").unwrap();
    assert_eq!(ev[0].id, None);
}

#[test]
fn refuses_oversized_events() {
    let mut p = Parser::new(8);
    assert!(p.feed(b"data: 0123456789").is_err());
}
