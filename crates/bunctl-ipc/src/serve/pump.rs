//! Events from the connection's subscription to its output, and the gate that keeps a reply
//! behind the events published before it.

use std::sync::LazyLock;
use std::task::{Context, Poll};

use ipc_proto::{IpcError, IpcResponse, Result};
use tokio::io::{AsyncRead, AsyncWrite};
use tracing::{debug, trace, warn};

use super::wire::Wire;
use crate::{BusEvent, Event, Subscription};

/// Events moved from the subscription at a time; one write carries them.
const EVENT_BATCH: usize = 64;

/// The longest `lagged` notice there can be: a subscription is accepted only on a connection
/// whose frame limit carries it, so that no loss is ever silent.
pub(super) static LONGEST_NOTICE: LazyLock<usize> = LazyLock::new(|| {
    let notice = IpcResponse::from(Event::lagged(u64::MAX));
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
    undelivered: u64,
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
        self.on = Some(Box::new(Pumping { sub, batch: Vec::new(), next: 0, undelivered: 0 }));
    }

    /// Ends the subscription, if any. Its events not yet in the output are not lost silently:
    /// one `lagged` notice counts them.
    pub(super) fn end<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        wire: &mut Wire<S>,
    ) -> Result<()> {
        let Some(p) = self.on.take() else { return Ok(()) };
        let Pumping { sub, batch, next, undelivered } = *p;
        let left: u64 = batch[next..].iter().map(|e| e.missed().unwrap_or(1)).sum();
        let missed = undelivered + left + sub.close();
        announce(wire, missed)
    }

    /// The subscription's position: events ever queued for it.
    pub(super) fn position(&self) -> u64 {
        self.on.as_ref().map_or(0, |p| p.sub.published_count())
    }

    /// True once every event up to `position` has been taken from the subscription and put in
    /// the output, or announced lost.
    pub(super) fn has_settled(&self, position: u64) -> bool {
        self.on.as_ref().is_none_or(|p| {
            p.next == p.batch.len() && p.undelivered == 0 && p.sub.settled_count() >= position
        })
    }

    /// Moves events into the output while it has room: first those already taken, then one
    /// more batch. Returns whether anything changed.
    pub(super) fn poll_into<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        cx: &mut Context<'_>,
        wire: &mut Wire<S>,
    ) -> Result<bool> {
        let Some(p) = self.on.as_deref_mut() else { return Ok(false) };
        let mut moved = p.drain_into(wire)?;
        if p.next < p.batch.len() || !wire.has_room() {
            return Ok(moved);
        }
        p.batch.clear();
        p.next = 0;
        match p.sub.poll_recv_many(cx, &mut p.batch, EVENT_BATCH) {
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
            if let Some(missed) = event.missed() {
                // The bus's own loss notice: merged with ours, announced before the next event
                // that does go out.
                self.undelivered += missed;
                continue;
            }
            announce(wire, std::mem::take(&mut self.undelivered))?;
            match wire.queue_event(event.encoded_frame()) {
                Ok(()) => {}
                Err(IpcError::Poisoned) => return Err(IpcError::Poisoned),
                Err(e) => {
                    warn!(event_type = event.event_type(), error = %e,
                          "event cannot be delivered; the subscriber is told it missed it");
                    self.undelivered += 1;
                }
            }
        }
        if self.next == self.batch.len() {
            announce(wire, std::mem::take(&mut self.undelivered))?;
        }
        Ok(self.next > start)
    }
}

/// Queues a `lagged` notice for `missed` lost events, if there are any. A notice that cannot be
/// queued ends the connection: losses are never silent.
fn announce<S: AsyncRead + AsyncWrite + Unpin>(wire: &mut Wire<S>, missed: u64) -> Result<()> {
    if missed > 0 {
        trace!(missed, "lagged");
        wire.queue_notice(&Event::lagged(missed).into())?;
    }
    Ok(())
}

/// Holds a reply until the events published before it are settled: cause before effect.
/// Only a subscribed connection's replies wait here, so the reply is boxed.
pub(super) struct ReplyGate {
    /// The reply, and the subscription's position when the handler returned it.
    held: Option<Box<(IpcResponse, u64)>>,
}

impl ReplyGate {
    pub(super) fn new() -> Self {
        ReplyGate { held: None }
    }

    pub(super) fn hold(&mut self, reply: IpcResponse, pump: &EventPump) {
        self.held = Some(Box::new((reply, pump.position())));
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
