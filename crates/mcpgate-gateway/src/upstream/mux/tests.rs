use super::*;

fn parse(s: &str) -> Message {
    Message::parse(s.as_bytes()).unwrap()
}

fn setup(shared: bool) -> (Arc<Mux>, mpsc::UnboundedReceiver<Bytes>) {
    let (tx, rx) = mpsc::unbounded_channel();
    (Mux::new("t".into(), shared, tx), rx)
}

fn sent(rx: &mut mpsc::UnboundedReceiver<Bytes>) -> Message {
    Message::parse(&rx.try_recv().expect("a message was written")).unwrap()
}

#[test]
fn same_client_ids_from_two_sessions_never_collide() {
    let (mux, mut wire) = setup(true);
    let a = mux.attach(EventLog::new(0, 8, None));
    let b = mux.attach(EventLog::new(0, 8, None));
    let mut ea = mux
        .request(
            a,
            parse(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#),
        )
        .unwrap();
    let mut eb = mux
        .request(
            b,
            parse(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#),
        )
        .unwrap();
    let (ia, ib) = (
        sent(&mut wire).id_key().unwrap().to_owned(),
        sent(&mut wire).id_key().unwrap().to_owned(),
    );
    assert_ne!(ia, ib);
    // Answer b first, then a: each session gets its own answer under its own id.
    mux.dispatch(parse(&format!(
        r#"{{"jsonrpc":"2.0","id":{ib},"result":{{"who":"b"}}}}"#
    )));
    mux.dispatch(parse(&format!(
        r#"{{"jsonrpc":"2.0","id":{ia},"result":{{"who":"a"}}}}"#
    )));
    let ra = ea.try_recv().unwrap();
    let rb = eb.try_recv().unwrap();
    assert_eq!(ra.id_key(), Some("1"));
    assert_eq!(ra.result.unwrap().get(), r#"{"who":"a"}"#);
    assert_eq!(rb.result.unwrap().get(), r#"{"who":"b"}"#);
}

#[test]
fn progress_is_routed_and_token_restored_when_shared() {
    let (mux, mut wire) = setup(true);
    let a = mux.attach(EventLog::new(0, 8, None));
    let mut ea = mux
        .request(a, parse(r#"{"jsonrpc":"2.0","id":"x","method":"tools/call","params":{"_meta":{"progressToken":7}}}"#))
        .unwrap();
    let out = sent(&mut wire);
    let token = crate::jsonrpc::progress_token(out.params.as_deref()).unwrap();
    assert_ne!(token.get(), "7");
    mux.dispatch(parse(&format!(
        r#"{{"jsonrpc":"2.0","method":"notifications/progress","params":{{"progressToken":{},"progress":1}}}}"#,
        token.get()
    )));
    let p = ea.try_recv().unwrap();
    assert_eq!(
        crate::jsonrpc::notification_progress_token(p.params.as_deref())
            .unwrap()
            .get(),
        "7"
    );
}

#[test]
fn server_requests_go_to_the_busy_session_and_answers_are_checked() {
    let (mux, mut wire) = setup(true);
    let a = mux.attach(EventLog::new(0, 8, None));
    let b = mux.attach(EventLog::new(0, 8, None));
    let mut eb = mux
        .request(
            b,
            parse(r#"{"jsonrpc":"2.0","id":5,"method":"tools/call"}"#),
        )
        .unwrap();
    let _ = sent(&mut wire);
    mux.dispatch(parse(
        r#"{"jsonrpc":"2.0","id":"s1","method":"sampling/createMessage","params":{}}"#,
    ));
    let req = eb.try_recv().unwrap();
    assert_eq!(req.method.as_deref(), Some("sampling/createMessage"));
    // Session a may not answer b's server request; b may.
    mux.send(a, parse(r#"{"jsonrpc":"2.0","id":"s1","result":{}}"#))
        .unwrap();
    assert!(wire.try_recv().is_err());
    mux.send(b, parse(r#"{"jsonrpc":"2.0","id":"s1","result":{}}"#))
        .unwrap();
    assert_eq!(sent(&mut wire).id_key(), Some("\"s1\""));
}

#[test]
fn undeclared_capability_is_refused_to_the_server() {
    let (mux, mut wire) = setup(false);
    let a = mux.attach(EventLog::new(0, 8, None));
    mux.set_capabilities(
        a,
        Some(&crate::jsonrpc::raw(
            &serde_json::json!({"capabilities": {"roots": {}}}),
        )),
    );
    mux.dispatch(parse(
        r#"{"jsonrpc":"2.0","id":9,"method":"elicitation/create","params":{}}"#,
    ));
    let err = sent(&mut wire);
    assert_eq!(err.id_key(), Some("9"));
    assert!(err.error.unwrap().get().contains("elicitation"));
}

#[test]
fn cancellation_is_rewritten_and_failure_answers_everyone() {
    let (mux, mut wire) = setup(false);
    let a = mux.attach(EventLog::new(0, 8, None));
    let mut e1 = mux
        .request(a, parse(r#"{"jsonrpc":"2.0","id":1,"method":"x"}"#))
        .unwrap();
    let mut e2 = mux
        .request(a, parse(r#"{"jsonrpc":"2.0","id":2,"method":"x"}"#))
        .unwrap();
    let first = sent(&mut wire).id_key().unwrap().to_owned();
    let _ = sent(&mut wire);
    mux.send(
        a,
        parse(r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":1}}"#),
    )
    .unwrap();
    let c = sent(&mut wire);
    assert_eq!(
        crate::jsonrpc::cancelled_request_id(c.params.as_deref())
            .unwrap()
            .get(),
        first
    );
    mux.fail("child exited");
    assert!(
        e1.try_recv().is_err(),
        "a cancelled request gets nothing more"
    );
    let err = e2.try_recv().unwrap();
    assert_eq!(err.id_key(), Some("2"));
    assert!(
        mux.request(a, parse(r#"{"jsonrpc":"2.0","id":3,"method":"x"}"#))
            .is_err()
    );
}

#[test]
fn shared_child_refuses_a_server_request_it_cannot_attribute() {
    let (mux, mut wire) = setup(true);
    let a = mux.attach(EventLog::new(0, 8, None));
    let b = mux.attach(EventLog::new(0, 8, None));
    let mut ea = mux
        .request(
            a,
            parse(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call"}"#),
        )
        .unwrap();
    let mut eb = mux
        .request(
            b,
            parse(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call"}"#),
        )
        .unwrap();
    let _ = (sent(&mut wire), sent(&mut wire));
    mux.dispatch(parse(
        r#"{"jsonrpc":"2.0","id":"q","method":"elicitation/create","params":{}}"#,
    ));
    // Two users' requests are in flight: neither may see the question.
    assert!(ea.try_recv().is_err() && eb.try_recv().is_err());
    let refusal = sent(&mut wire);
    assert_eq!(refusal.id_key(), Some("\"q\""));
    assert!(
        refusal
            .error
            .unwrap()
            .get()
            .contains("several requests are in flight")
    );
}

#[tokio::test]
async fn an_exchange_pairs_each_message_with_its_event_id_and_the_stop_error_with_none() {
    let (tx, rx) = mpsc::unbounded_channel();
    let (ids_tx, ids) = mpsc::unbounded_channel();
    let stopping = crate::stopping::Stopping::default();
    let mut ex = Exchange::with_ids(rx, ids).until(stopping.stop_for(Some(jsonrpc::num_id(1))));
    let progress = parse(r#"{"jsonrpc":"2.0","method":"notifications/progress"}"#);
    ids_tx.send(Some(Arc::from("u-1"))).unwrap();
    tx.send(progress.clone()).unwrap();
    ids_tx.send(None).unwrap();
    tx.send(progress.clone()).unwrap();
    ids_tx.send(Some(Arc::from("u-3"))).unwrap();
    tx.send(progress).unwrap();
    assert!(ex.recv().await.is_some());
    assert_eq!(ex.upstream_id(), Some("u-1"));
    assert!(ex.recv().await.is_some());
    assert_eq!(ex.upstream_id(), None, "an event without an id");
    stopping.trigger();
    let err = ex.recv().await.expect("the stop's error");
    assert!(err.error.is_some());
    assert_eq!(ex.upstream_id(), None, "not the next message's id");
    assert!(ex.recv().await.is_none());
}

/// Sets its flag when dropped: tells whether an exchange's driver was dropped.
struct DropFlag(Arc<std::sync::atomic::AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[tokio::test]
async fn a_driven_exchange_yields_what_its_driver_reads_in_order_and_then_ends() {
    let (tx, rx) = mpsc::unbounded_channel();
    let driver = Driver::new(async move {
        for i in 1..=3 {
            // Yields between messages, as a reader waiting on the network does.
            tokio::task::yield_now().await;
            let _ = tx.send(parse(&format!(
                r#"{{"jsonrpc":"2.0","method":"notifications/progress","params":{{"progress":{i}}}}}"#
            )));
        }
        tokio::task::yield_now().await;
        let _ = tx.send(parse(r#"{"jsonrpc":"2.0","id":7,"result":{}}"#));
    });
    let mut ex = Exchange::new(rx).driven_by(driver);
    let mut got = Vec::new();
    while let Some(m) = ex.recv().await {
        got.push(m.to_bytes());
    }
    let got: Vec<String> = got
        .iter()
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .collect();
    assert_eq!(got.len(), 4, "{got:?}");
    for (i, m) in got.iter().take(3).enumerate() {
        assert!(m.contains(&format!("\"progress\":{}", i + 1)), "{m}");
    }
    assert!(got[3].contains("\"id\":7"), "{}", got[3]);
}

#[tokio::test]
async fn dropping_a_driven_exchange_drops_its_driver() {
    let (_tx, rx) = mpsc::unbounded_channel::<Message>();
    let dropped = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = DropFlag(dropped.clone());
    let driver = Driver::new(async move {
        let _flag = flag;
        std::future::pending::<()>().await;
    });
    let mut ex = Exchange::new(rx).driven_by(driver);
    // Waiting runs the driver (which never ends here): the wait is cut short.
    let waited = tokio::time::timeout(std::time::Duration::from_millis(20), ex.recv()).await;
    assert!(waited.is_err());
    assert!(!dropped.load(Ordering::SeqCst));
    drop(ex);
    assert!(dropped.load(Ordering::SeqCst));
}
