//! Login throttling: failed sign-ins counted per account and per client IP
//! in a fixed window, in memory (a restart forgets them, which only helps an
//! attacker as much as a restart they cannot cause).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Most keys remembered; old windows are dropped first when full.
const MAX_KEYS: usize = 10_000;

/// Counts failures per key.
#[derive(Debug)]
pub(crate) struct Throttle {
    max: u32,
    window: Duration,
    seen: Mutex<HashMap<String, (u32, Instant)>>,
}

impl Throttle {
    pub(crate) fn new(max: u32, window: Duration) -> Throttle {
        Throttle {
            max,
            window,
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// How long `key` must wait, if it is locked out.
    pub(crate) fn locked(&self, key: &str) -> Option<Duration> {
        let seen = self.seen.lock().ok()?;
        let (n, since) = seen.get(key)?;
        let elapsed = since.elapsed();
        (*n >= self.max && elapsed < self.window).then(|| self.window - elapsed)
    }

    /// Records a failure of `key`.
    pub(crate) fn fail(&self, key: &str) {
        let Ok(mut seen) = self.seen.lock() else {
            return;
        };
        if seen.len() >= MAX_KEYS {
            let window = self.window;
            seen.retain(|_, (_, since)| since.elapsed() < window);
        }
        let e = seen.entry(key.to_owned()).or_insert((0, Instant::now()));
        if e.1.elapsed() >= self.window {
            *e = (0, Instant::now());
        }
        e.0 += 1;
    }

    /// Forgets `key`'s failures (after a successful sign-in).
    pub(crate) fn clear(&self, key: &str) {
        if let Ok(mut seen) = self.seen.lock() {
            seen.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_after_max_failures_and_clears() {
        let t = Throttle::new(2, Duration::from_secs(60));
        assert!(t.locked("a").is_none());
        t.fail("a");
        assert!(t.locked("a").is_none());
        t.fail("a");
        assert!(t.locked("a").is_some());
        assert!(t.locked("b").is_none());
        t.clear("a");
        assert!(t.locked("a").is_none());
    }
}
