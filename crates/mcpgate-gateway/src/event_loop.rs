//! Which of `mcpgate serve`'s event loops the current thread is, and values
//! kept one per loop.
//!
//! `serve` runs one single-threaded Tokio runtime per core and gives each
//! client connection to one of them, as nginx gives each to one worker
//! process: a request, the upstream connection it is sent on and the task
//! that drives that connection then run on the same thread, and no other
//! thread is woken on its way. A pooled hyper connection is driven by a task
//! of the runtime that opened it, so a pool shared by the loops would bring
//! the hand-offs back; an upstream's client is therefore a [`PerLoop`] value.

use std::cell::Cell;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The number of event loops `serve` runs (1 until [`set_count`]).
static COUNT: AtomicUsize = AtomicUsize::new(1);

thread_local! {
    /// This thread's loop; 0 for every thread that is not a loop's.
    static CURRENT: Cell<usize> = const { Cell::new(0) };
}

/// Declares how many event loops there are; values made after this keep one
/// slot per loop. Called once, before the gateway is built.
pub fn set_count(n: usize) {
    COUNT.store(n.max(1), Ordering::Relaxed);
}

/// Marks the calling thread as event loop `index` (0 is the main thread's).
pub fn enter(index: usize) {
    CURRENT.with(|c| c.set(index));
}

/// The calling thread's event loop.
pub(crate) fn current() -> usize {
    CURRENT.with(Cell::get)
}

/// A value made on first use in each event loop, so that what it drives
/// (a connection pool's tasks) stays on that loop's thread.
pub(crate) struct PerLoop<T> {
    slots: Box<[OnceLock<T>]>,
    make: fn() -> T,
}

impl<T> PerLoop<T> {
    /// One slot per event loop declared so far; `make` fills a slot on its
    /// loop's first use.
    pub(crate) fn new(make: fn() -> T) -> Self {
        let n = COUNT.load(Ordering::Relaxed).max(1);
        PerLoop {
            slots: (0..n).map(|_| OnceLock::new()).collect(),
            make,
        }
    }

    /// The calling loop's value. A thread beyond the slots (a value made
    /// before the loops were counted) shares one: still correct, only with
    /// the hand-offs between threads this type exists to avoid.
    pub(crate) fn get(&self) -> &T {
        let i = current() % self.slots.len();
        // `i` is in range: the modulo above, over a non-empty slice.
        let slot = &self.slots[i];
        slot.get_or_init(self.make)
    }
}

impl<T> std::fmt::Debug for PerLoop<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let made = self.slots.iter().filter(|s| s.get().is_some()).count();
        f.debug_struct("PerLoop")
            .field("loops", &self.slots.len())
            .field("made", &made)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_loop_gets_its_own_value_and_keeps_it() {
        static MADE: AtomicUsize = AtomicUsize::new(0);
        fn make() -> usize {
            MADE.fetch_add(1, Ordering::Relaxed)
        }
        let values = PerLoop {
            slots: (0..2).map(|_| OnceLock::new()).collect(),
            make,
        };
        let on = |i: usize| {
            let v = &values;
            std::thread::scope(|s| {
                s.spawn(move || {
                    enter(i);
                    *v.get()
                })
                .join()
                .unwrap_or(usize::MAX)
            })
        };
        let first = on(1);
        let main = on(0);
        assert_ne!(first, main, "two loops share a value");
        assert_eq!(on(1), first, "a loop's value was made again");
        // A loop beyond the slots wraps onto one of them rather than failing.
        assert_eq!(on(3), first);
        assert_eq!(MADE.load(Ordering::Relaxed), 2);
    }
}
