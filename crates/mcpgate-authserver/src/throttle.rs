//! Login throttling: sign-in attempts counted per account and per client IP
//! in a fixed window, in memory (a restart forgets them, which only helps an
//! attacker as much as a restart they cannot cause).
//!
//! An attempt is reserved *before* its password is checked, for every key at
//! once under one lock: however many requests arrive together, no more than
//! `max` passwords per key and window are ever evaluated. A failed attempt
//! keeps its reservation (it is the failure count); a successful one clears
//! the account and gives its address reservation back.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Most keys remembered; old windows are dropped first when full.
const MAX_KEYS: usize = 10_000;

/// Counts attempts per key.
#[derive(Debug)]
pub(crate) struct Throttle {
    max: u32,
    window: Duration,
    seen: Mutex<HashMap<String, (u32, Instant)>>,
}

/// Attempts reserved for one sign-in; the keys it counted against.
#[derive(Debug)]
#[must_use = "a reservation is released on success or kept as a failure"]
pub(crate) struct Reservation {
    keys: Vec<String>,
}

impl Throttle {
    pub(crate) fn new(max: u32, window: Duration) -> Throttle {
        Throttle {
            max,
            window,
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// Reserves one attempt against every one of `keys`, or, when any of them
    /// has used up its window, how long to wait (nothing is reserved then).
    pub(crate) fn reserve(&self, keys: &[&str]) -> Result<Reservation, Duration> {
        // A poisoned lock means a panic elsewhere while counting: refuse rather than let through.
        let Ok(mut seen) = self.seen.lock() else {
            return Err(self.window);
        };
        if seen.len() >= MAX_KEYS {
            let window = self.window;
            seen.retain(|_, (_, since)| since.elapsed() < window);
        }
        let mut wait = None;
        for k in keys {
            if let Some((n, since)) = seen.get(*k) {
                let elapsed = since.elapsed();
                if *n >= self.max && elapsed < self.window {
                    let w = self.window - elapsed;
                    wait = Some(wait.map_or(w, |o: Duration| o.max(w)));
                }
            }
        }
        if let Some(w) = wait {
            return Err(w);
        }
        for k in keys {
            let e = seen.entry((*k).to_owned()).or_insert((0, Instant::now()));
            if e.1.elapsed() >= self.window {
                *e = (0, Instant::now());
            }
            e.0 += 1;
        }
        Ok(Reservation {
            keys: keys.iter().map(|k| (*k).to_owned()).collect(),
        })
    }

    /// A reserved attempt that was not a guess (the store could not answer):
    /// its reservations are given back.
    pub(crate) fn release(&self, r: Reservation) {
        let Ok(mut seen) = self.seen.lock() else {
            return;
        };
        for k in &r.keys {
            if let Some(e) = seen.get_mut(k) {
                e.0 = e.0.saturating_sub(1);
            }
        }
    }

    /// A successful sign-in: `account` is forgotten, the other keys get
    /// their reservation back (a shared address keeps its failures).
    pub(crate) fn succeeded(&self, r: Reservation, account: &str) {
        let Ok(mut seen) = self.seen.lock() else {
            return;
        };
        seen.remove(account);
        for k in r.keys.iter().filter(|k| *k != account) {
            if let Some(e) = seen.get_mut(k) {
                e.0 = e.0.saturating_sub(1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserves_at_most_max_and_success_clears() {
        let t = Throttle::new(2, Duration::from_secs(60));
        let a = t.reserve(&["user:a", "ip:1"]).expect("first");
        let _b = t.reserve(&["user:a", "ip:1"]).expect("second");
        // Both in flight: a third is refused before any password is checked.
        assert!(t.reserve(&["user:a", "ip:2"]).is_err());
        assert!(t.reserve(&["user:b", "ip:1"]).is_err());
        assert!(t.reserve(&["user:b", "ip:2"]).is_ok());
        t.succeeded(a, "user:a");
        // The account is cleared; the address got one reservation back.
        assert!(t.reserve(&["user:a", "ip:1"]).is_ok());
        assert!(t.reserve(&["user:c", "ip:1"]).is_err());
    }

    #[test]
    fn concurrent_reservations_never_exceed_max() {
        let t = std::sync::Arc::new(Throttle::new(5, Duration::from_secs(60)));
        let granted: usize = std::thread::scope(|s| {
            let hs: Vec<_> = (0..64)
                .map(|_| {
                    let t = t.clone();
                    s.spawn(move || usize::from(t.reserve(&["user:a", "ip:1"]).is_ok()))
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap_or(0)).sum()
        });
        assert_eq!(granted, 5);
    }

    #[test]
    fn a_released_attempt_is_not_counted() {
        let t = Throttle::new(1, Duration::from_secs(60));
        let r = t.reserve(&["user:a"]).expect("first");
        t.release(r);
        assert!(t.reserve(&["user:a"]).is_ok());
        assert!(t.reserve(&["user:a"]).is_err());
    }
}
