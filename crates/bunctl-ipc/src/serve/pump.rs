//! Events from the connection's subscription to its output, and the gate that keeps a reply
//! behind the events published before it.

use std::sync::LazyLock;
use std::task::{Context, Poll};

use ipc_proto::{IpcError, IpcResponse, Result};
use tokio::io::{AsyncRead, AsyncWrite};
use tracing::{debug, trace, warn};

use super::wire::Wire;
use crate::event::Loss;
use crate::{BusEvent, Event, Subscription};

/// Events moved from the subscription at a time; one write carries them.
const EVENT_BATCH: usize = 64;

/// The longest `lagged` notice there can be: a subscription is accepted only on a connection
/// whose frame limit carries it, so that no loss is ever silent.
pub(super) static LONGEST_NOTICE: LazyLock<usize> = LazyLock::new(|| {
    // Positions stay below 2^53.
    let most = (1 << 53) - 1;
    let notice = IpcResponse::from(Event::lagged_between(u64::MAX, most, most));
    serde_json::to_vec(&notice).map_or(usize::MAX, |json| json.len() + ipc_proto::HEADER_LEN)
});

/// Moves the subscription's events into the output while it has room, and accounts for the
/// ones it cannot deliver (over this connection's frame limit, or not encodable): they are
/// announced in a `lagged` notice where the gap is, exactly like events the bus dropped.
/// Boxed, so that a connection that never subscribes carries one pointer for it.
pub(super) struct EventPump {
    on: Option<Box<Pumping>>,
}

struct Pumping {
    sub: Subscription,
    /// Events taken from the subscription; those from `next` on are not yet in the output
    /// (it ran out of room).
    batch: Vec<BusEvent>,
    next: usize,
    /// Events lost since the last notice, not yet announced.
    undelivered: Loss,
}

impl EventPump {
    pub(super) fn new() -> Self {
        EventPump { on: None }
    }

    pub(super) fn is_subscribed(&self) -> bool {
        self.on.is_some()
    }

    pub(super) fn subscribe(&mut self, sub: Subscription) {
        debug_assert!(self.on.is_none(), "the old subscription is ended first");
        let undelivered = Loss::default();
        self.on = Some(Box::new(Pumping { sub, batch: Vec::new(), next: 0, undelivered }));
    }

    /// Ends the subscription, if any. Its events not yet in the output are not lost silently:
    /// one `lagged` notice counts them.
    pub(super) fn end<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        wire: &mut Wire<S>,
    ) -> Result<()> {
        let Some(p) = self.on.take() else { return Ok(()) };
        let Pumping { sub, batch, next, mut undelivered } = *p;
        // In stream order: what the pump could not deliver, what it had taken, what the bus
        // still had.
        for event in &batch[next..] {
            undelivered.merge(event.lost_as());
        }
        undelivered.merge(sub.close());
        announce(wire, undelivered)
    }

    /// True once every event up to position `seq` has been taken from the subscription and
    /// put in the output, or announced lost.
    pub(super) fn has_settled(&self, seq: u64) -> bool {
        self.on.as_ref().is_none_or(|p| {
            p.next == p.batch.len() && p.undelivered.is_empty() && p.sub.is_settled_through(seq)
        })
    }

    /// Moves events into the output while it has room, none after position `through`: first
    /// those already taken, then one more batch. Returns whether anything changed.
    pub(super) fn poll_into<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        cx: &mut Context<'_>,
        wire: &mut Wire<S>,
        through: u64,
    ) -> Result<bool> {
        let Some(p) = self.on.as_deref_mut() else { return Ok(false) };
        let mut moved = p.drain_into(wire)?;
        if p.next < p.batch.len() || !wire.has_room() {
            return Ok(moved);
        }
        p.batch.clear();
        p.next = 0;
        match p.sub.poll_recv_through(cx, &mut p.batch, EVENT_BATCH, through) {
            Poll::Pending => {}
            Poll::Ready(0) => {
                debug!("event bus closed; no more events for this connection");
                self.on = None;
                moved = true;
            }
            Poll::Ready(n) => {
                trace!(events = n, "forwarding events");
                p.drain_into(wire)?;
                moved = true;
            }
        }
        Ok(moved)
    }
}

impl Pumping {
    /// Queues the batch's events from `next` on while the output has room; once the batch is
    /// through, announces what it lost. Returns whether anything was queued or accounted for.
    fn drain_into<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        wire: &mut Wire<S>,
    ) -> Result<bool> {
        let start = self.next;
        while self.next < self.batch.len() && wire.has_room() {
            let event = &self.batch[self.next];
            self.next += 1;
            if let Some(loss) = event.loss() {
                // The bus's own loss notice: merged with ours, announced before the next event
                // that does go out.
                self.undelivered.merge(loss);
                continue;
            }
            announce(wire, std::mem::take(&mut self.undelivered))?;
            match wire.queue_event(event.encoded_frame()) {
                Ok(()) => {}
                Err(IpcError::Poisoned) => return Err(IpcError::Poisoned),
                Err(e) => {
                    warn!(event_type = event.event_type(), error = %e,
                          "event cannot be delivered; the subscriber is told it missed it");
                    self.undelivered.merge(event.lost_as());
                }
            }
        }
        if self.next == self.batch.len() {
            announce(wire, std::mem::take(&mut self.undelivered))?;
        }
        Ok(self.next > start)
    }
}

/// Queues a `lagged` notice for `lost`, if anything was. A notice that cannot be queued ends
/// the connection: losses are never silent.
fn announce<S: AsyncRead + AsyncWrite + Unpin>(wire: &mut Wire<S>, lost: Loss) -> Result<()> {
    if !lost.is_empty() {
        trace!(missed = lost.missed, "lagged");
        wire.queue_notice(&lost.notice().into())?;
    }
    Ok(())
}

/// Holds a reply until the events published before it are settled: cause before effect.
/// Only a subscribed connection's replies wait here, so the reply is boxed.
pub(super) struct ReplyGate {
    /// The reply, and the bus's position when the handler returned it.
    held: Option<Box<(IpcResponse, u64)>>,
}

impl ReplyGate {
    pub(super) fn new() -> Self {
        ReplyGate { held: None }
    }

    /// Holds `reply` until every event up to position `seq` is settled.
    pub(super) fn hold(&mut self, reply: IpcResponse, seq: u64) {
        self.held = Some(Box::new((reply, seq)));
    }

    /// The position the held reply waits for, if one is held: no event after it may go out
    /// before the reply.
    pub(super) fn seq(&self) -> Option<u64> {
        self.held.as_ref().map(|held| held.1)
    }

    pub(super) fn is_empty(&self) -> bool {
        self.held.is_none()
    }

    pub(super) fn release(&mut self, pump: &EventPump) -> Option<IpcResponse> {
        match &self.held {
            Some(held) if pump.has_settled(held.1) => self.held.take().map(|held| held.0),
            _ => None,
        }
    }
}
