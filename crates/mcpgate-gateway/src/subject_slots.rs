//! Per-subject counts of something limited (sessions opening, stdio children),
//! each unit held as a [`Slot`] that gives itself back when dropped, so no
//! path that ends early can leak a count.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// How many slots each subject holds; a subject holding none has no entry.
#[derive(Debug, Clone, Default)]
pub(crate) struct SubjectSlots(Arc<Mutex<HashMap<String, usize>>>);

/// One unit counted against its subject, until dropped.
#[derive(Debug)]
pub(crate) struct Slot {
    slots: SubjectSlots,
    subject: String,
}

impl SubjectSlots {
    /// One more slot for `subject`, or `None` when it holds `room` already.
    pub(crate) fn take(&self, subject: &str, room: usize) -> Option<Slot> {
        let mut counts = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let n = counts.entry(subject.to_owned()).or_default();
        if *n >= room {
            if *n == 0 {
                counts.remove(subject);
            }
            return None;
        }
        *n += 1;
        Some(Slot {
            slots: self.clone(),
            subject: subject.to_owned(),
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self.slots.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = counts.get_mut(&self.subject) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.remove(&self.subject);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_counts_until_dropped_and_the_room_is_per_subject() {
        let s = SubjectSlots::default();
        let a1 = s.take("alice", 2).expect("first");
        let _a2 = s.take("alice", 2).expect("second");
        assert!(s.take("alice", 2).is_none(), "alice is at 2");
        assert!(s.take("bob", 2).is_some(), "bob is not");
        drop(a1);
        assert!(s.take("alice", 2).is_some(), "a dropped slot is given back");
        assert!(s.take("carol", 0).is_none(), "no room");
        assert!(
            s.0.lock().unwrap().get("carol").is_none(),
            "no empty entry left"
        );
    }
}
