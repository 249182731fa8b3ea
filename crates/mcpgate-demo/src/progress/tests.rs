use std::sync::{Arc, Mutex};

use super::*;

#[tokio::test]
async fn counts_every_step_in_order() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let outcome = count(
        5,
        Duration::from_millis(1),
        &CancellationToken::new(),
        |step| {
            let sink = sink.clone();
            async move { sink.lock().expect("lock").push(step) }
        },
    )
    .await;
    assert_eq!(outcome, Outcome::Finished { steps: 5 });
    assert_eq!(*seen.lock().expect("lock"), vec![1, 2, 3, 4, 5]);
}

#[tokio::test]
async fn stops_early_when_cancelled() {
    let cancel = CancellationToken::new();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let trigger = cancel.clone();
    let outcome = count(1_000, Duration::from_millis(5), &cancel, |step| {
        let sink = sink.clone();
        let trigger = trigger.clone();
        async move {
            sink.lock().expect("lock").push(step);
            if step == 3 {
                trigger.cancel();
            }
        }
    })
    .await;
    assert_eq!(outcome, Outcome::Cancelled { completed: 3 });
    assert_eq!(*seen.lock().expect("lock"), vec![1, 2, 3]);
}

#[tokio::test]
async fn zero_steps_finish_at_once() {
    let outcome = count(
        0,
        Duration::from_secs(60),
        &CancellationToken::new(),
        |_| async {},
    )
    .await;
    assert_eq!(outcome, Outcome::Finished { steps: 0 });
}

#[test]
fn limits() {
    assert!(check(MAX_STEPS, MAX_DELAY_MS).is_ok());
    assert!(check(MAX_STEPS + 1, 0).is_err());
    assert!(check(1, MAX_DELAY_MS + 1).is_err());
}
