//! `mcpgate serve`'s event loops: one single-threaded Tokio runtime per
//! core (`server.worker_threads`), each client connection served whole by
//! one of them.
//!
//! A work-stealing runtime wakes a second worker whenever one starts running
//! tasks, and moves a request, its upstream connection's task and the answer
//! between threads; at one connection both of two workers woke about three
//! times per request (docs/BENCHMARKS.md, "Event loops"). Here a connection
//! stays on the loop it was given, and so do the tasks its requests spawn
//! and the upstream connections they open (`mcpgate_gateway::event_loop`).
//! Loop 0 is the main thread's runtime, which also runs start-up, signals,
//! reloads and the background work; the others run on threads of their own.
//! What a loop gives up is stealing: a connection waits for its own loop
//! even while another is idle, which is nginx's trade too.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;

/// The running loops.
#[derive(Debug)]
pub(crate) struct EventLoops {
    /// The runtimes of loops 1 and up; loop 0 is whichever runtime calls
    /// [`EventLoops::start`].
    others: Vec<Handle>,
    /// Connections each loop is serving now, loop 0 first.
    load: Arc<[AtomicUsize]>,
    /// Ends the other loops' threads.
    stop: CancellationToken,
}

/// The loop a connection is served on; its count stays raised until this
/// is dropped (with the connection's task).
#[derive(Debug)]
pub(crate) struct Placement {
    load: Arc<[AtomicUsize]>,
    index: usize,
    /// `None` for loop 0, the runtime the listener runs on.
    handle: Option<Handle>,
}

impl EventLoops {
    /// Starts `count` loops (at least one): the calling runtime's and
    /// `count - 1` threads.
    pub(crate) fn start(count: usize) -> std::io::Result<EventLoops> {
        let count = count.max(1);
        mcpgate_gateway::event_loop::set_count(count);
        mcpgate_gateway::event_loop::enter(0);
        let stop = CancellationToken::new();
        let others = (1..count)
            .map(|i| start_loop(i, stop.clone()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(EventLoops {
            others,
            load: (0..count).map(|_| AtomicUsize::new(0)).collect(),
            stop,
        })
    }

    /// How many loops there are.
    pub(crate) fn count(&self) -> usize {
        self.load.len()
    }

    /// The loop serving the fewest connections, for a new one; of equals,
    /// the highest: loop 0 also runs the listener and the background work
    /// (the audit writer's batches among it), so it takes connections last.
    pub(crate) fn place(&self) -> Placement {
        let index = self
            .load
            .iter()
            .enumerate()
            .rev()
            .min_by_key(|(_, n)| n.load(Ordering::Relaxed))
            .map_or(0, |(i, _)| i);
        if let Some(n) = self.load.get(index) {
            n.fetch_add(1, Ordering::Relaxed);
        }
        let handle = index
            .checked_sub(1)
            .and_then(|i| self.others.get(i))
            .cloned();
        Placement {
            load: self.load.clone(),
            index,
            handle,
        }
    }

    /// Ends the loops' threads; what still runs on them is dropped. Called
    /// after the drain and the children's stop, when nothing is left to serve.
    pub(crate) fn stop(&self) {
        self.stop.cancel();
    }
}

impl Placement {
    /// The loop's runtime; `None` when it is the listener's own (loop 0).
    pub(crate) fn handle(&self) -> Option<&Handle> {
        self.handle.as_ref()
    }
}

impl Drop for Placement {
    fn drop(&mut self) {
        if let Some(n) = self.load.get(self.index) {
            n.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// Starts loop `index` on a thread of its own, running until `stop`, and
/// returns its runtime.
fn start_loop(index: usize, stop: CancellationToken) -> std::io::Result<Handle> {
    let (ready, started) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name(format!("mcpgate-loop-{index}"))
        .spawn(move || {
            mcpgate_gateway::event_loop::enter(index);
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = ready.send(Err(e));
                    return;
                }
            };
            let _ = ready.send(Ok(rt.handle().clone()));
            rt.block_on(stop.cancelled());
            // Tasks still here are dropped, not waited for: the shutdown
            // has drained the connections and stopped the children by now.
            rt.shutdown_background();
        })?;
    started
        .recv()
        .map_err(|_| std::io::Error::other(format!("event loop {index} ended before it started")))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_go_to_the_least_busy_loop_and_leave_it_when_done() {
        let loops = EventLoops::start(3).expect("start");
        let a = loops.place();
        let b = loops.place();
        let c = loops.place();
        // Of equals the highest: loop 0 carries the listener and background work.
        assert_eq!((a.index, b.index, c.index), (2, 1, 0));
        assert!(c.handle().is_none(), "loop 0 is the caller's runtime");
        assert!(a.handle().is_some() && b.handle().is_some());
        drop(b);
        assert_eq!(
            loops.place().index,
            1,
            "the loop a connection left is the least busy"
        );
        loops.stop();
    }

    #[test]
    fn a_task_spawned_on_a_loop_runs_on_that_loops_thread() {
        let loops = EventLoops::start(2).expect("start");
        let p1 = loops.place();
        assert_eq!(p1.index, 1);
        let handle = p1.handle().expect("loop 1").clone();
        let (tx, rx) = std::sync::mpsc::channel();
        handle.spawn(async move {
            let _ = tx.send(std::thread::current().name().map(str::to_owned));
        });
        let name = rx
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("the loop ran the task");
        assert_eq!(name.as_deref(), Some("mcpgate-loop-1"));
        loops.stop();
    }
}
