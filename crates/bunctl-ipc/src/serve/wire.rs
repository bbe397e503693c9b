//! The connection as `serve` uses it: requests read one at a time, frames queued and written in
//! batches, and, for every reply and for the output left when input ends, the time by which it
//! must be written.
//!
//! What is owed is kept as marks over the output's byte stream: "everything up to byte `end`
//! must be written by `due`". A mark is pushed when a reply is ready (while it waits in the
//! reply gate it has no end yet), merged with the previous one when both are still waiting for
//! the clock, given its time when the clock is read, and dropped as soon as the bytes up to its
//! end are written — by whichever write that is. Marks are pushed in the order replies become
//! ready and stamped with a clock that only moves forward, so the first mark is always the
//! first due.

use std::collections::VecDeque;
use std::task::{Context, Poll};
use std::time::Duration;

use ipc_proto::{IpcError, IpcMessage, IpcResponse, Result};
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
    pub(super) conn: Connection<S, IpcMessage, IpcResponse>,
    /// No more requests: the client's end of stream, an oversize frame, a read error, or
    /// shutdown.
    closed: bool,
    /// Part of a request frame is in, the rest is not.
    partial: bool,
    /// A request read while the output had no room for its reply (see `poll_request`).
    ahead: Option<Box<Result<IpcMessage>>>,
    /// The read error that ended the input, returned once what is owed has been written.
    ending: Option<IpcError>,
    /// Bytes ever queued and ever written: positions in the output stream.
    queued: u64,
    written: u64,
    /// What must be written by when, first due first.
    owed: VecDeque<Owed>,
}

/// Everything up to byte `end` of the output must be written by `due`.
#[derive(Debug, Clone, Copy)]
struct Owed {
    /// `None` while the reply waits in the gate, not yet queued.
    end: Option<u64>,
    /// `None` until the clock is next read.
    due: Option<Instant>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Wire<S> {
    pub(super) fn new(conn: Connection<S, IpcMessage, IpcResponse>) -> Self {
        Wire {
            conn,
            closed: false,
            partial: false,
            ahead: None,
            ending: None,
            queued: 0,
            written: 0,
            owed: VecDeque::new(),
        }
    }

    /// The next request, once the output has room for its reply. Without room, one request is
    /// read ahead and kept for then, so that the end of the input and read errors are seen
    /// (and returned at once) even while the client is not reading its output.
    pub(super) fn poll_request(&mut self, cx: &mut Context<'_>) -> Poll<Result<IpcMessage>> {
        if self.closed {
            return Poll::Pending;
        }
        if let Some(ahead) = self.ahead.take() {
            if self.has_room() {
                return Poll::Ready(*ahead);
            }
            self.ahead = Some(ahead);
            return Poll::Pending;
        }
        let received = self.conn.poll_recv(cx);
        // Part of a frame is in: from now on it has the operation timeout to complete, whether
        // or not the connection is subscribed (a trickled frame is not listening).
        self.partial = received.is_pending() && self.conn.has_partial_frame();
        match received {
            Poll::Ready(request) if !self.has_room() && is_answerable(&request) => {
                self.ahead = Some(Box::new(request));
                Poll::Pending
            }
            other => other,
        }
    }

    /// No more input: what is queued now must be written within the timeout, and `ending`,
    /// if any, is what the connection returns once everything owed is written.
    pub(super) fn close_input(&mut self, ending: Option<IpcError>) {
        self.closed = true;
        self.partial = false;
        if self.ending.is_none() {
            self.ending = ending;
        }
        // A reply still to come (a handler running, or one in the gate) ends later and is due
        // no earlier, so it covers what is queued now.
        if self.queued > self.written && self.owed.back().is_none_or(|o| o.end.is_some()) {
            self.owe(self.queued);
        }
    }

    pub(super) fn is_closed(&self) -> bool {
        self.closed
    }

    pub(super) fn has_partial_frame(&self) -> bool {
        self.partial
    }

    /// The error that ended the input, if one did.
    pub(super) fn take_ending(&mut self) -> Option<IpcError> {
        self.ending.take()
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

    /// A reply is ready but held back (by the reply gate): its time runs from now.
    pub(super) fn hold_reply(&mut self) {
        self.owed.push_back(Owed { end: None, due: None });
    }

    /// Queues a reply, the one held back if there is one. A reply that cannot be encoded or is
    /// over the frame limit is replaced by an error reply saying so, shortened until it fits,
    /// so the request still gets exactly one answer; if not even the shortest fits, the
    /// connection cannot answer at all and the error is returned.
    pub(super) fn queue_reply(&mut self, reply: &IpcResponse) -> Result<()> {
        let before = self.conn.queued_len();
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
        self.queued += (self.conn.queued_len() - before) as u64;
        match self.owed.back_mut() {
            Some(held) if held.end.is_none() => held.end = Some(self.queued),
            _ => self.owe(self.queued),
        }
        Ok(())
    }

    /// Queues an event or a notice (an encoded frame); events carry no deadline of their own.
    pub(super) fn queue_event(&mut self, frame: &[u8]) -> Result<()> {
        self.conn.queue_encoded(frame)?;
        self.queued += frame.len() as u64;
        Ok(())
    }

    /// Queues a notice the server makes itself (a `lagged` notice); like events, it carries no
    /// deadline of its own.
    pub(super) fn queue_notice(&mut self, notice: &IpcResponse) -> Result<()> {
        let before = self.conn.queued_len();
        self.conn.queue(notice)?;
        self.queued += (self.conn.queued_len() - before) as u64;
        Ok(())
    }

    fn owe(&mut self, end: u64) {
        match self.owed.back_mut() {
            // Not stamped yet: it will get the same time as this one.
            Some(last) if last.end.is_some() && last.due.is_none() => last.end = Some(end),
            _ => self.owed.push_back(Owed { end: Some(end), due: None }),
        }
    }

    /// Writes what is queued. Returns whether any byte went out, or the error.
    pub(super) fn poll_write(&mut self, cx: &mut Context<'_>) -> Result<bool> {
        let before = self.conn.queued_len();
        let flushed = self.conn.poll_flush_queued(cx);
        let written = before - self.conn.queued_len();
        self.written += written as u64;
        while self.owed.front().is_some_and(|o| o.end.is_some_and(|end| end <= self.written)) {
            self.owed.pop_front();
        }
        match flushed {
            Poll::Ready(Err(e)) => Err(e),
            Poll::Ready(Ok(())) => Ok(true),
            Poll::Pending => Ok(written > 0),
        }
    }

    /// Whether something owed has not been given its time yet.
    pub(super) fn needs_clock(&self) -> bool {
        self.owed.back().is_some_and(|o| o.due.is_none())
    }

    /// Gives what became owed since the clock was last read the time `now`.
    pub(super) fn stamp(&mut self, now: Instant, limit: Duration) {
        for owed in self.owed.iter_mut().rev() {
            if owed.due.is_some() {
                break;
            }
            owed.due = Some(deadline_after(now, limit));
        }
    }

    /// When the first thing owed must be written by.
    pub(super) fn first_due(&self) -> Option<Instant> {
        self.owed.front().and_then(|o| o.due)
    }

    /// About to wait with nothing owed: the list's memory is given back.
    pub(super) fn release(&mut self) {
        if self.owed.is_empty() && self.owed.capacity() > 0 {
            self.owed = VecDeque::new();
        }
    }
}

/// A request, or a bad frame that the connection answers and goes on after.
fn is_answerable(received: &Result<IpcMessage>) -> bool {
    received.as_ref().map_or_else(|e| e.is_recoverable(), |_| true)
}
