use crate::test_store;

#[tokio::test]
async fn a_quota_counts_up_to_its_limit_per_key_and_day() {
    let (_db, store) = test_store().await;
    for want in 1..=3 {
        assert_eq!(
            store.quota_take("r\u{1f}s=alice", 20_000, 3).await.unwrap(),
            Some(want)
        );
    }
    assert_eq!(
        store.quota_take("r\u{1f}s=alice", 20_000, 3).await.unwrap(),
        None
    );
    assert_eq!(store.quota_used("r\u{1f}s=alice", 20_000).await.unwrap(), 3);
    // Another key and the next day count on their own.
    assert_eq!(
        store.quota_take("r\u{1f}s=bob", 20_000, 3).await.unwrap(),
        Some(1)
    );
    assert_eq!(
        store.quota_take("r\u{1f}s=alice", 20_001, 3).await.unwrap(),
        Some(1)
    );
    assert_eq!(store.quota_purge_before(20_001).await.unwrap(), 2);
    assert_eq!(store.quota_used("r\u{1f}s=alice", 20_000).await.unwrap(), 0);
    assert_eq!(store.quota_used("r\u{1f}s=alice", 20_001).await.unwrap(), 1);
}

#[tokio::test]
async fn concurrent_takes_count_exactly_the_limit() {
    let (_db, store) = test_store().await;
    let takes = (0..40).map(|_| {
        let s = store.clone();
        tokio::spawn(async move { s.quota_take("burst", 7, 15).await.unwrap() })
    });
    let mut allowed = 0;
    for t in takes {
        if t.await.unwrap().is_some() {
            allowed += 1;
        }
    }
    assert_eq!(allowed, 15);
    assert_eq!(store.quota_used("burst", 7).await.unwrap(), 15);
}
