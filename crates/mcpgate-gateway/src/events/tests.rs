use futures_util::StreamExt;

use super::*;

fn msg(n: u64) -> Message {
    Message::notification("n", Some(crate::jsonrpc::num_id(n)))
}

#[tokio::test]
async fn replays_after_last_event_id_and_ends_on_close() {
    let log = EventLog::new(3, 10, None);
    log.push(&msg(1));
    log.push(&msg(2));
    log.push(&msg(3));
    log.close();
    let frames: Vec<_> = log.reader(Some(1)).collect().await;
    assert_eq!(frames.len(), 2);
    let first = std::str::from_utf8(&frames[0]).unwrap();
    assert!(first.starts_with("id: 3-2-"), "{first}");
    let id = parse_event_id(first[4..].lines().next().unwrap()).unwrap();
    assert_eq!((id.stream, id.seq), (3, 2));
    assert!(log.issued(&id));
    assert!(!EventLog::new(3, 10, None).issued(&id), "another log's id");
    assert!(
        first.contains(r#"data: {"jsonrpc":"2.0","method":"n","params":2}"#),
        "{first}"
    );
}

#[tokio::test]
async fn bounded_and_live() {
    let log = EventLog::new(0, 2, Some("message"));
    for n in 0..5 {
        log.push(&msg(n));
    }
    let mut reader = Box::pin(log.reader(None));
    let a = reader.next().await.unwrap();
    assert!(std::str::from_utf8(&a).unwrap().starts_with("id: 0-4-"));
    let _ = reader.next().await.unwrap();
    let log2 = log.clone();
    tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        log2.push(&msg(9));
        log2.close();
    });
    let c = reader.next().await.unwrap();
    assert!(std::str::from_utf8(&c).unwrap().starts_with("id: 0-6-"));
    assert!(reader.next().await.is_none());
    // A new position-less reader does not replay what was already delivered.
    assert_eq!(log.reader(None).count().await, 0);
}

#[test]
fn multi_line_data_and_ids() {
    let f = frame("1-2", None, b"{\n\"a\":1}");
    assert_eq!(&f[..], b"id: 1-2\ndata: {\ndata: \"a\":1}\n\n");
    let id = parse_event_id("12-34-0000abcd").unwrap();
    assert_eq!((id.stream, id.seq), (12, 34));
    assert_eq!(parse_event_id("12-34"), None, "no tag: not one of ours");
    assert_eq!(parse_event_id("x"), None);
}

#[tokio::test]
async fn ids_carry_the_upstream_position_once_bound() {
    let log = EventLog::new(0, 10, None);
    log.note_upstream_id("u-0");
    log.push(&msg(1));
    log.carry_upstream_ids(UpstreamIds(Box::new(|up| Some(format!("e1.{up}")))));
    log.note_upstream_id("u-1");
    log.push(&msg(2));
    log.push_priming();
    log.close();
    let frames: Vec<_> = log.reader(Some(0)).collect().await;
    let ids: Vec<String> = frames
        .iter()
        .map(|f| {
            std::str::from_utf8(f).unwrap()[4..]
                .lines()
                .next()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(upstream_part(&ids[0]), None, "unbound: {}", ids[0]);
    for id in &ids[1..] {
        assert_eq!(upstream_part(id), Some("e1.u-1"), "{id}");
        // The part before the upstream's is still a position in this log.
        let own = parse_event_id(id).unwrap();
        assert!(log.issued(&own), "{id}");
    }
    assert_eq!(parse_event_id(&ids[2]).unwrap().seq, 3);
    assert_eq!(log.last_seq(), 3);
    assert_eq!(upstream_part("0-1-0000abcd."), None);
}
