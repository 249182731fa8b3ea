use crate::otlp::proto::{Attr, Kind, SpanRecord};

use super::*;

fn limits(max_queue: usize, max_batch: usize) -> Limits {
    Limits {
        max_queue,
        max_batch,
        delay: Duration::from_secs(5),
        export_timeout: Duration::from_secs(30),
        max_concurrent: 1,
    }
}

/// Queues `spans` as a request's spans are.
fn push(q: &SpanQueue, spans: &[SpanRecord<'_>]) {
    q.push(spans.len(), |out| spans.iter().for_each(|s| s.write(out)));
}

fn record<'a>(attrs: &'a [Attr<'a>]) -> SpanRecord<'a> {
    SpanRecord {
        trace_id: [1; 16],
        span_id: [2; 8],
        trace_state: "",
        parent_span_id: None,
        parent_is_remote: false,
        trace_flags: 1,
        name: &["tools/call"],
        kind: Kind::Server,
        start: 1,
        end: 2,
        attrs,
        error: false,
    }
}

#[test]
fn a_batch_is_sealed_when_full_and_never_split_across_a_request() {
    let q = SpanQueue::new(limits(100, 4), 0);
    let attrs = [Attr::str("mcp.method.name", "tools/call")];
    let three = [record(&attrs), record(&attrs), record(&attrs)];
    push(&q, &three);
    // Nothing full yet: only the timer (or shutdown) takes it.
    assert!(q.take(false).is_none());
    // Three more would make six: the first three go out on their own.
    push(&q, &three);
    let (batch, n) = q.take(false).expect("a sealed batch");
    assert_eq!(n, 3);
    assert_eq!(batch.len(), 3 * three[0].encoded_len());
    push(&q, &three[..1]);
    let (_, n) = q.take(false).expect("four: full");
    assert_eq!(n, 4);
    assert!(q.take(true).is_none());
    assert_eq!(q.dropped(), 0);
}

#[test]
fn spans_beyond_the_queue_are_dropped_whole_and_counted() {
    let q = SpanQueue::new(limits(5, 512), 0);
    let r = [record(&[]), record(&[]), record(&[])];
    push(&q, &r);
    push(&q, &r);
    assert_eq!(q.dropped(), 3);
    let (_, n) = q.take(true).expect("what fitted");
    assert_eq!(n, 3);
    // Room again.
    push(&q, &r);
    assert_eq!(q.take(true).map(|(_, n)| n), Some(3));
    q.close();
    push(&q, &r);
    assert_eq!(q.dropped(), 6);
    assert!(q.take(true).is_none());
}

#[test]
fn the_limits_come_from_the_batch_processor_variables() {
    let vars = |pairs: &'static [(&'static str, &'static str)]| {
        move |k: &str| {
            pairs
                .iter()
                .find(|(name, _)| *name == k)
                .map(|(_, v)| (*v).to_owned())
        }
    };
    assert_eq!(
        Limits::with(vars(&[])),
        Limits {
            max_queue: 16_384,
            max_batch: 512,
            delay: Duration::from_millis(5_000),
            export_timeout: Duration::from_millis(30_000),
            max_concurrent: 1,
        }
    );
    let set = Limits::with(vars(&[
        ("OTEL_BSP_MAX_QUEUE_SIZE", "100"),
        ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "400"),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ("OTEL_BSP_EXPORT_TIMEOUT", "not a number"),
        ("OTEL_BSP_MAX_CONCURRENT_EXPORTS", "4"),
    ]));
    // A batch no larger than the queue.
    assert_eq!((set.max_queue, set.max_batch), (100, 100));
    assert_eq!(set.delay, Duration::from_millis(100));
    assert_eq!(set.export_timeout, Duration::from_millis(30_000));
    assert_eq!(set.max_concurrent, 4);
    // None at once would post nothing: one, as by default.
    let zero = Limits::with(vars(&[("OTEL_BSP_MAX_CONCURRENT_EXPORTS", "0")]));
    assert_eq!(zero.max_concurrent, 1);
}

/// A collector on loopback that holds every export request for a while
/// before it answers, and counts how many it held at once and in all.
async fn slow_collector(hold: Duration) -> (String, Arc<Mutex<(usize, usize, usize)>>) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a loopback port");
    let url = format!(
        "http://{}/v1/traces",
        listener.local_addr().expect("its address")
    );
    // (in flight now, most in flight at once, requests in all)
    let seen = Arc::new(Mutex::new((0, 0, 0)));
    let counts = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                loop {
                    // One request: its head, then content-length bytes.
                    let mut chunk = [0u8; 4096];
                    let head_end = loop {
                        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break i + 4;
                        }
                        match conn.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    };
                    let head = String::from_utf8_lossy(&buf[..head_end]).to_lowercase();
                    let len: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    while buf.len() < head_end + len {
                        match conn.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    buf.drain(..head_end + len);
                    {
                        let mut s = seen.lock().expect("counts");
                        s.0 += 1;
                        s.1 = s.1.max(s.0);
                        s.2 += 1;
                    }
                    tokio::time::sleep(hold).await;
                    seen.lock().expect("counts").0 -= 1;
                    let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
                    if conn.write_all(ok).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (url, counts)
}

/// Posts four one-span batches to a collector that holds each for a while,
/// with `max_concurrent` set; what the collector saw.
async fn export_four(max_concurrent: usize) -> (usize, usize) {
    let (url, seen) = slow_collector(Duration::from_millis(300)).await;
    let q = Arc::new(SpanQueue::new(
        Limits {
            max_concurrent,
            ..limits(100, 1)
        },
        Envelope::default().head_room(),
    ));
    for _ in 0..4 {
        push(&q, &[record(&[])]);
    }
    let exporter = OtlpExporter::new(crate::otlp::ExportConfig {
        endpoint: url.parse().expect("a URL"),
        headers: http::HeaderMap::new(),
        timeout: Duration::from_secs(10),
    });
    let task = tokio::spawn(run(q.clone(), exporter, Envelope::default()));
    q.close();
    tokio::time::timeout(Duration::from_secs(20), task)
        .await
        .expect("the exports end")
        .expect("the task ends");
    let s = *seen.lock().expect("counts");
    (s.1, s.2)
}

#[tokio::test]
async fn batches_are_posted_at_most_max_concurrent_exports_at_once() {
    // The default: one at a time.
    assert_eq!(export_four(1).await, (1, 4));
    // OTEL_BSP_MAX_CONCURRENT_EXPORTS=2: two are held by the collector at once.
    assert_eq!(export_four(2).await, (2, 4));
}
