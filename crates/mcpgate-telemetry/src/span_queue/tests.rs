use crate::otlp::proto::{Attr, Kind};

use super::*;

fn limits(max_queue: usize, max_batch: usize) -> Limits {
    Limits {
        max_queue,
        max_batch,
        delay: Duration::from_secs(5),
        export_timeout: Duration::from_secs(30),
    }
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
    let q = SpanQueue::new(limits(100, 4));
    let attrs = [Attr::str("mcp.method.name", "tools/call")];
    let three = [record(&attrs), record(&attrs), record(&attrs)];
    q.push(&three);
    // Nothing full yet: only the timer (or shutdown) takes it.
    assert!(q.take(false).is_none());
    // Three more would make six: the first three go out on their own.
    q.push(&three);
    let (batch, n) = q.take(false).expect("a sealed batch");
    assert_eq!(n, 3);
    assert_eq!(batch.len(), 3 * three[0].encoded_len());
    q.push(&three[..1]);
    let (_, n) = q.take(false).expect("four: full");
    assert_eq!(n, 4);
    assert!(q.take(true).is_none());
    assert_eq!(q.dropped(), 0);
}

#[test]
fn spans_beyond_the_queue_are_dropped_whole_and_counted() {
    let q = SpanQueue::new(limits(5, 512));
    let r = [record(&[]), record(&[]), record(&[])];
    q.push(&r);
    q.push(&r);
    assert_eq!(q.dropped(), 3);
    let (_, n) = q.take(true).expect("what fitted");
    assert_eq!(n, 3);
    // Room again.
    q.push(&r);
    assert_eq!(q.take(true).map(|(_, n)| n), Some(3));
    q.close();
    q.push(&r);
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
        }
    );
    let set = Limits::with(vars(&[
        ("OTEL_BSP_MAX_QUEUE_SIZE", "100"),
        ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "400"),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ("OTEL_BSP_EXPORT_TIMEOUT", "not a number"),
    ]));
    // A batch no larger than the queue.
    assert_eq!((set.max_queue, set.max_batch), (100, 100));
    assert_eq!(set.delay, Duration::from_millis(100));
    assert_eq!(set.export_timeout, Duration::from_millis(30_000));
}
