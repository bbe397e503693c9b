//! The per-operation deadline of a connection or of one of its halves.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Waker};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep, sleep_until};

/// A per-operation deadline that costs almost nothing when operations finish in time.
///
/// Arming a tokio timer for every `recv` and `send` would put a timer-wheel insertion (under the
/// time driver's lock) on every message. Instead one long-lived `Sleep` is kept that fires no
/// later than the deadline in force. When it fires early — its deadline belonged to an earlier,
/// long-finished operation — it is moved to the current deadline. In steady traffic the timer is
/// re-armed about once per timeout period instead of once per message.
///
/// An operation that completes without waiting never reads the clock: its deadline is fixed the
/// first time it has to wait (`timeout` from then; what came before was one synchronous poll).
/// The `Sleep` is allocated the first time an operation has to wait, and kept.
#[derive(Debug, Default)]
pub(super) struct OpTimer {
    /// Allocated the first time an operation waits (with a limit), and kept.
    state: Option<Pin<Box<TimerState>>>,
}

pin_project! {
    #[derive(Debug)]
    struct TimerState {
        #[pin]
        sleep: Sleep,
        // The current operation's deadline once it has waited; `None` before, or with no
        // limit.
        deadline: Option<Instant>,
        // The current operation has waited (and registered its waker with `sleep`).
        waited: bool,
    }
}

impl OpTimer {
    /// Starts timing a new operation.
    pub(super) fn start(&mut self) {
        if let Some(state) = self.state.as_mut() {
            let state = state.as_mut().project();
            *state.waited = false;
            *state.deadline = None;
        }
    }

    /// Ends the current operation. If it waited, the `Sleep` still holds its task's waker, and
    /// a waker keeps its task's allocation alive: a connection that outlives the task that last
    /// used it (a pooled client, a connection handed between tasks) would pin that task's
    /// memory. A no-op waker takes its place.
    pub(super) fn finish(&mut self) {
        let Some(state) = self.state.as_mut() else { return };
        let state = state.as_mut().project();
        if std::mem::take(state.waited) && state.deadline.is_some() {
            let _ = state.sleep.poll(&mut Context::from_waker(Waker::noop()));
        }
    }

    /// For an operation that may take `timeout` (`Duration::MAX`: no limit) and is about to
    /// wait: true once its deadline has passed; otherwise arranges a wake-up for it.
    pub(super) fn poll_expired(&mut self, cx: &mut Context<'_>, timeout: Duration) -> bool {
        let state = match &mut self.state {
            Some(state) => state,
            None => {
                let Some(deadline) = Instant::now().checked_add(timeout) else { return false };
                self.state.insert(Box::pin(TimerState {
                    sleep: sleep_until(deadline),
                    deadline: Some(deadline),
                    waited: true,
                }))
            }
        };
        let mut state = state.as_mut().project();
        if !std::mem::replace(state.waited, true) {
            *state.deadline = Instant::now().checked_add(timeout);
        }
        let Some(deadline) = *state.deadline else { return false };
        if state.sleep.deadline() > deadline {
            state.sleep.as_mut().reset(deadline);
        }
        loop {
            if state.sleep.as_mut().poll(cx).is_pending() {
                return false;
            }
            if Instant::now() >= deadline {
                return true;
            }
            state.sleep.as_mut().reset(deadline);
        }
    }
}
