//! The series a request touches, found again without building a label set.
//!
//! A `Family` lookup takes the whole label set by value, so every request
//! allocated one `String` per label and family (route, upstream) and hashed
//! all of its labels: most of what metrics cost a request. This cache keeps
//! the metric handles (which share their values with the family's series)
//! under the one dynamic label, found by `&str`, and a small fixed key.

use std::collections::HashMap;
use std::sync::{PoisonError, RwLock};

/// Handles by a name (route template, upstream) and a small key (status,
/// method, outcome). Both come from bounded sets, so the cache stays as small
/// as the families themselves.
#[derive(Debug)]
pub(super) struct Series<K, V> {
    by_name: RwLock<HashMap<String, Vec<(K, V)>>>,
}

impl<K, V> Default for Series<K, V> {
    fn default() -> Self {
        Series {
            by_name: RwLock::new(HashMap::new()),
        }
    }
}

impl<K: Copy + PartialEq, V> Series<K, V> {
    /// Runs `f` on the handle for `(name, key)`, made by `make` the first time.
    pub(super) fn with(&self, name: &str, key: K, make: impl FnOnce() -> V, f: impl FnOnce(&V)) {
        {
            // Recording into a handle cannot leave it half-done: a poisoned
            // lock still holds good handles.
            let map = self.by_name.read().unwrap_or_else(PoisonError::into_inner);
            if let Some((_, v)) = map
                .get(name)
                .and_then(|s| s.iter().find(|(k, _)| *k == key))
            {
                f(v);
                return;
            }
        }
        let mut map = self.by_name.write().unwrap_or_else(PoisonError::into_inner);
        let series = map.entry(name.to_owned()).or_default();
        // Another request may have made it between the two locks.
        if let Some((_, v)) = series.iter().find(|(k, _)| *k == key) {
            f(v);
            return;
        }
        let v = make();
        f(&v);
        series.push((key, v));
    }
}
