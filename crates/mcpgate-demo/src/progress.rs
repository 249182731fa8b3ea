//! `slow_count`: a deliberately slow tool that reports progress and stops
//! when its request is cancelled, to exercise the gateway's relaying of
//! `notifications/progress` and `notifications/cancelled`.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::error::DemoError;

/// Upper bound on `steps`, so one call cannot occupy the server for long.
pub(crate) const MAX_STEPS: u32 = 1_000;
/// Upper bound on `delay_ms`.
pub(crate) const MAX_DELAY_MS: u32 = 10_000;

/// How a count ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Every step ran.
    Finished {
        /// Steps completed, equal to the steps asked for.
        steps: u32,
    },
    /// The request was cancelled after `completed` steps.
    Cancelled {
        /// Steps completed before the cancellation was noticed.
        completed: u32,
    },
}

/// Checks the arguments of `slow_count`.
pub(crate) fn check(steps: u32, delay_ms: u32) -> Result<(), DemoError> {
    if steps > MAX_STEPS {
        return Err(DemoError::InvalidInput(format!(
            "steps is {steps}; use at most {MAX_STEPS}"
        )));
    }
    if delay_ms > MAX_DELAY_MS {
        return Err(DemoError::InvalidInput(format!(
            "delay_ms is {delay_ms}; use at most {MAX_DELAY_MS}"
        )));
    }
    Ok(())
}

/// Counts from 1 to `steps`, waiting `delay` before each step and calling
/// `on_step(step)` after it. Returns as soon as `cancel` fires, even in the
/// middle of a wait.
pub(crate) async fn count<F, Fut>(
    steps: u32,
    delay: Duration,
    cancel: &CancellationToken,
    mut on_step: F,
) -> Outcome
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = ()>,
{
    for step in 1..=steps {
        tokio::select! {
            // Prefer noticing a cancellation over finishing one more step.
            biased;
            () = cancel.cancelled() => return Outcome::Cancelled { completed: step - 1 },
            () = tokio::time::sleep(delay) => {}
        }
        on_step(step).await;
    }
    Outcome::Finished { steps }
}

#[cfg(test)]
mod tests;
