//! The connection as `serve` uses it: requests read one at a time, frames queued and written in
//! batches; and the ledger of what is owed, for every reply and for the output left when input
//! ends, by when.
//!
//! What is owed is kept as marks over the output's byte stream: "everything up to byte `end`
//! must be written by `due`". A mark is pushed when a reply is ready (while it waits in the
//! reply gate it has no end yet), merged with the previous one when both are still waiting for
//! the clock, given its time when the clock is read, and dropped as soon as the bytes up to its
//! end are written — by whichever write that is. Marks are pushed in the order replies become
//! ready and stamped with a clock that only moves forward, so the first mark is always the
//! first due. The ledger lives in the deadline keeper's allocation, which every connection has
//! anyway, so that the connection's task stays small.

use std::collections::VecDeque;
use std::task::{Context, Poll};
use std::time::Duration;

use ipc_proto::{IpcError, IpcResponse, Request, Result};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;
use tracing::warn;

use super::deadlines::deadline_after;
use crate::Connection;

/// Output queued beyond this stops the intake of events and requests until it is written, so
/// a client that does not read costs at most this much (plus the frame that crossed it) of
/// write buffer.
pub(super) const HIGH_WATER: usize = 64 * 1024;
/// Queued output that is written without waiting for the round to run out of work: pipelined
/// replies go out in writes of about this size (like `FramedWrite`'s backpressure boundary).
const WRITE_BATCH: usize = 8 * 1024;

pub(super) struct Wire<S> {
    pub(super) conn: Connection<S, Request, IpcResponse>,
    /// No more requests: the client's end of stream, an oversize frame, a read error, or
    /// shutdown.
    input_closed: bool,
    /// Part of a request frame is in, the rest is not.
    partial: bool,
    /// The server is shutting down (set by the shutdown watch).
    pub(super) shutting_down: bool,
    /// Rare and large next to the rest of an idle connection, so boxed.
    aside: Option<Box<Aside>>,
}

enum Aside {
    /// A request read while the output had no room for its reply (see `poll_request`).
    Ahead(Result<Request>),
    /// The read error that ended the input, returned once what is owed has been written.
    Ending(IpcError),
}

/// What the output owes, by when: see the module docs.
#[derive(Default)]
pub(super) struct Ledger {
    /// Bytes ever written: the position of the output's first unwritten byte.
    written: u64,
    owed: OwedList,
}

/// Everything up to byte `end` of the output must be written by `due`.
#[derive(Debug, Clone, Copy)]
struct Owed {
    /// `HELD` while the reply waits in the gate, not yet queued.
    end: u64,
    /// `None` until the clock is next read.
    due: Option<Instant>,
}

/// The `end` of a reply that is not queued yet.
const HELD: u64 = u64::MAX;

impl Owed {
    fn is_held(&self) -> bool {
        self.end == HELD
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Wire<S> {
    pub(super) fn new(conn: Connection<S, Request, IpcResponse>) -> Self {
        Wire { conn, input_closed: false, partial: false, shutting_down: false, aside: None }
    }

    /// The next request, once the output has room for its reply. Without room, one request is
    /// read ahead and kept for then, so that the end of the input and read errors are seen
    /// (and returned at once) even while the client is not reading its output.
    pub(super) fn poll_request(&mut self, cx: &mut Context<'_>) -> Poll<Result<Request>> {
        if self.input_closed {
            return Poll::Pending;
        }
        if let Some(aside) = self.aside.take() {
            match *aside {
                Aside::Ahead(request) if self.has_room() => return Poll::Ready(request),
                kept => self.aside = Some(Box::new(kept)),
            }
            return Poll::Pending;
        }
        let received = self.conn.poll_recv(cx);
        // Part of a frame is in: from now on it has the operation timeout to complete, whether
        // or not the connection is subscribed (a trickled frame is not listening).
        self.partial = received.is_pending() && self.conn.has_partial_frame();
        match received {
            Poll::Ready(request) if !self.has_room() && is_answerable(&request) => {
                self.aside = Some(Box::new(Aside::Ahead(request)));
                Poll::Pending
            }
            other => other,
        }
    }

    /// No more input; `ending`, if any, is what the connection returns once everything owed
    /// is written.
    pub(super) fn close_input(&mut self, ending: Option<IpcError>) {
        self.input_closed = true;
        self.partial = false;
        let ended = matches!(self.aside.as_deref(), Some(Aside::Ending(_)));
        if let Some(e) = ending.filter(|_| !ended) {
            // A request read ahead is abandoned with the rest of the input.
            self.aside = Some(Box::new(Aside::Ending(e)));
        }
    }

    /// Bytes queued and not yet written.
    pub(super) fn queued_len(&self) -> usize {
        self.conn.queued_len()
    }

    pub(super) fn is_input_closed(&self) -> bool {
        self.input_closed
    }

    pub(super) fn has_partial_frame(&self) -> bool {
        self.partial
    }

    /// The error that ended the input, if one did.
    pub(super) fn take_ending(&mut self) -> Option<IpcError> {
        match self.aside.take().map(|aside| *aside) {
            Some(Aside::Ending(e)) => Some(e),
            _ => None,
        }
    }

    pub(super) fn has_room(&self) -> bool {
        self.conn.queued_len() < HIGH_WATER
    }

    pub(super) fn is_batch_full(&self) -> bool {
        self.conn.queued_len() >= WRITE_BATCH
    }

    pub(super) fn is_queued(&self) -> bool {
        self.conn.queued_len() > 0
    }

    /// Whether a frame of `len` bytes (header included) is within the frame limit.
    pub(super) fn fits(&self, len: usize) -> bool {
        len.saturating_sub(ipc_proto::HEADER_LEN) <= self.conn.max_send_size()
    }

    /// Queues a reply. A reply that cannot be encoded or is over the frame limit is replaced by an error reply saying so, shortened until it fits,
    /// so the request still gets exactly one answer; if not even the shortest fits, the
    /// connection cannot answer at all and the error is returned.
    pub(super) fn queue_reply(&mut self, reply: &IpcResponse) -> Result<()> {
        if let Err(e) = self.conn.queue(reply) {
            if !matches!(e, IpcError::FrameTooLarge { .. } | IpcError::Encode(_)) {
                return Err(e);
            }
            warn!(error = %e, "reply cannot be sent; replying with an error instead");
            let substitutes = [format!("reply not sent: {e}"), "reply too large".to_owned()];
            let queued = substitutes
                .into_iter()
                .any(|message| self.conn.queue(&IpcResponse::Error { message }).is_ok());
            if !queued {
                return Err(e);
            }
        }
        Ok(())
    }

    /// Queues an event or a notice (an encoded frame); events carry no deadline of their own.
    pub(super) fn queue_event(&mut self, frame: &[u8]) -> Result<()> {
        self.conn.queue_encoded(frame)
    }

    /// Queues a notice the server makes itself (a `lagged` notice); like events, it carries no
    /// deadline of its own.
    pub(super) fn queue_notice(&mut self, notice: &IpcResponse) -> Result<()> {
        self.conn.queue(notice)
    }

    /// Writes what is queued. Returns how many bytes went out, and whether all of them did.
    pub(super) fn poll_write(&mut self, cx: &mut Context<'_>) -> Result<(usize, bool)> {
        let before = self.conn.queued_len();
        let flushed = self.conn.poll_flush_queued(cx);
        let written = before - self.conn.queued_len();
        match flushed {
            Poll::Ready(Err(e)) => Err(e),
            Poll::Ready(Ok(())) => Ok((written, true)),
            Poll::Pending => Ok((written, false)),
        }
    }
}

impl Ledger {
    /// A reply is ready but held back (by the reply gate): its time runs from now.
    pub(super) fn hold_reply(&mut self) {
        self.owed.push_back(Owed { end: HELD, due: None });
    }

    /// A reply was queued (the one held back, if there is one); `queued` bytes are unwritten.
    pub(super) fn reply_queued(&mut self, queued: usize) {
        let end = self.written + queued as u64;
        match self.owed.back_mut() {
            Some(held) if held.is_held() => held.end = end,
            _ => self.owe(end),
        }
    }

    /// The input ended with `queued` bytes unwritten: they must be written within the timeout.
    pub(super) fn input_closed(&mut self, queued: usize) {
        // A reply still to come (a handler running, or one in the gate) ends later and is due
        // no earlier, so it covers what is queued now.
        if queued > 0 && self.owed.back().is_none_or(|o| !o.is_held()) {
            self.owe(self.written + queued as u64);
        }
    }

    fn owe(&mut self, end: u64) {
        match self.owed.back_mut() {
            // Not stamped yet: it will get the same time as this one.
            Some(last) if !last.is_held() && last.due.is_none() => last.end = end,
            _ => self.owed.push_back(Owed { end, due: None }),
        }
    }

    /// `n` more bytes were written: what they complete is no longer owed.
    pub(super) fn written(&mut self, n: usize) {
        self.written += n as u64;
        while self.owed.front().is_some_and(|o| !o.is_held() && o.end <= self.written) {
            self.owed.pop_front();
        }
    }

    /// Whether something owed has not been given its time yet.
    pub(super) fn needs_clock(&self) -> bool {
        self.owed.back().is_some_and(|o| o.due.is_none())
    }

    /// Gives what became owed since the clock was last read the time `now`.
    pub(super) fn stamp(&mut self, now: Instant, limit: Duration) {
        self.owed.stamp(deadline_after(now, limit));
    }

    /// When the first thing owed must be written by.
    pub(super) fn first_due(&self) -> Option<Instant> {
        self.owed.front().and_then(|o| o.due)
    }

    /// About to wait: the list's spare memory is given back.
    pub(super) fn release(&mut self) {
        self.owed.release();
    }
}

/// The marks, the first one inline: one reply in flight, the common case, allocates nothing.
#[derive(Default)]
struct OwedList {
    first: Option<Owed>,
    // Boxed on purpose: 8 bytes in every connection instead of a `VecDeque`'s 32, for a list
    // that is rarely needed.
    #[allow(clippy::box_collection)]
    rest: Option<Box<VecDeque<Owed>>>,
}

impl OwedList {
    fn front(&self) -> Option<&Owed> {
        self.first.as_ref()
    }

    fn back(&self) -> Option<&Owed> {
        self.rest.as_deref().and_then(VecDeque::back).or(self.first.as_ref())
    }

    fn back_mut(&mut self) -> Option<&mut Owed> {
        match self.rest.as_deref_mut().and_then(VecDeque::back_mut) {
            Some(last) => Some(last),
            None => self.first.as_mut(),
        }
    }

    fn push_back(&mut self, owed: Owed) {
        match self.first {
            None => self.first = Some(owed),
            Some(_) => self.rest.get_or_insert_default().push_back(owed),
        }
    }

    fn pop_front(&mut self) {
        self.first = self.rest.as_deref_mut().and_then(VecDeque::pop_front);
    }

    /// Gives every mark still without a time `due` (they are the last ones).
    fn stamp(&mut self, due: Instant) {
        let rest = self.rest.as_deref_mut().into_iter().flat_map(|r| r.iter_mut().rev());
        for owed in rest.chain(self.first.as_mut()) {
            if owed.due.is_some() {
                break;
            }
            owed.due = Some(due);
        }
    }

    fn release(&mut self) {
        if self.rest.as_deref().is_some_and(VecDeque::is_empty) {
            self.rest = None;
        }
    }
}

/// A request, or a bad frame that the connection answers and goes on after.
fn is_answerable(received: &Result<Request>) -> bool {
    received.as_ref().map_or_else(|e| e.is_recoverable(), |_| true)
}
