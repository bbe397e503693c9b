//! One timer per connection, for whichever limit comes first: the first reply (or wind-down
//! output) owed (see the ledger in `wire`), the request frame in progress, the idle limit of a silent client.
//!
//! The clock is read once when the connection is about to wait (or yields), not per request:
//! what happened in between is stamped with that time, which is later than the truth by at
//! most one poll's work, so a limit may fire that much late, never early. The times live in
//! the timer's allocation, which every connection has anyway, so that the connection's task
//! stays small; so does the ledger of what the output owes.

use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use ipc_proto::{IpcError, Operation, Result};
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};
use tracing::debug;

use super::wire::Ledger;

/// `now + limit`, or far in the future if that overflows (`Duration::MAX` = no limit).
pub(super) fn deadline_after(now: Instant, limit: Duration) -> Instant {
    now.checked_add(limit).unwrap_or_else(far_future)
}

fn far_future() -> Instant {
    // What tokio itself uses for "never": about 30 years.
    Instant::now() + Duration::from_secs(86_400 * 365 * 30)
}

/// What the keeper needs to know when the connection has nothing to do.
pub(super) struct Waiting {
    /// Part of a request frame is in.
    pub(super) frame_in_progress: bool,
    /// Nothing in progress, nothing to write, not subscribed: the idle limit applies.
    pub(super) idle: bool,
}

pub(super) struct Deadlines {
    timer: Pin<Box<Timer>>,
}

pin_project! {
    struct Timer {
        #[pin]
        sleep: Sleep,
        // What the output owes, by when.
        ledger: Ledger,
        // When the request frame in progress started, while `frame_timed`; otherwise when the
        // connection was last active. One field serves both because the idle limit never
        // applies while a frame is in progress, and a frame ends either whole (which is
        // activity, stamped afresh) or with the input closed (no idle limit either).
        since: Instant,
        // A request frame is in progress and `since` is when it started.
        frame_timed: bool,
        // Activity since the clock was last read.
        active: bool,
    }
}

impl Deadlines {
    pub(super) fn new() -> Self {
        Deadlines {
            timer: Box::pin(Timer {
                sleep: tokio::time::sleep_until(far_future()),
                ledger: Ledger::default(),
                since: Instant::now(),
                frame_timed: false,
                active: false,
            }),
        }
    }

    /// The ledger of what the output owes.
    pub(super) fn ledger(&mut self) -> &mut Ledger {
        self.timer.as_mut().project().ledger
    }

    /// Something was written: the idle clock restarts.
    pub(super) fn activity(&mut self) {
        *self.timer.as_mut().project().active = true;
    }

    /// A request (or the end of input) arrived whole: the idle clock restarts, and the frame
    /// in progress, if any, is complete.
    pub(super) fn received(&mut self) {
        let timer = self.timer.as_mut().project();
        *timer.active = true;
        *timer.frame_timed = false;
    }

    /// Whether the clock must be read before waiting: activity to stamp, a frame that
    /// started since, or output newly owed.
    pub(super) fn needs_clock(&self, frame_in_progress: bool) -> bool {
        self.timer.active
            || (frame_in_progress && !self.timer.frame_timed)
            || self.timer.ledger.needs_clock()
    }

    /// Gives what happened since the clock was last read the time `now`.
    pub(super) fn stamp(&mut self, now: Instant, limit: Duration, frame_in_progress: bool) {
        let timer = self.timer.as_mut().project();
        timer.ledger.stamp(now, limit);
        let active = std::mem::take(timer.active);
        if frame_in_progress {
            // Activity while a frame is in progress is not recorded: the frame's completion,
            // later, is.
            if !*timer.frame_timed {
                *timer.frame_timed = true;
                *timer.since = now;
            }
        } else {
            *timer.frame_timed = false;
            if active {
                *timer.since = now;
            }
        }
    }

    /// Arms the timer for the limit that applies first, or fails if it has passed. The clock
    /// must have been read for what `state` says (see [`stamp`](Self::stamp)).
    pub(super) fn poll(
        &mut self,
        cx: &mut Context<'_>,
        state: Waiting,
        limit: Duration,
        idle_limit: Duration,
    ) -> Poll<Result<()>> {
        let timer = self.timer.as_mut().project();
        if !state.frame_in_progress {
            *timer.frame_timed = false;
        }
        let output = timer.ledger.first_due().map(|due| (due, Operation::Send, limit));
        let frame = timer
            .frame_timed
            .then(|| (deadline_after(*timer.since, limit), Operation::Receive, limit));
        let silent = (state.idle && !*timer.frame_timed)
            .then(|| (deadline_after(*timer.since, idle_limit), Operation::Receive, idle_limit));
        let Some((due, operation, after)) =
            [output, frame, silent].into_iter().flatten().min_by_key(|d| d.0)
        else {
            return Poll::Pending;
        };
        let mut sleep = timer.sleep;
        if sleep.deadline() != due {
            sleep.as_mut().reset(due);
        }
        ready!(sleep.poll(cx));
        debug!(%operation, ?after, "connection timed out");
        Poll::Ready(Err(IpcError::Timeout { operation, after, torn: false }))
    }
}
