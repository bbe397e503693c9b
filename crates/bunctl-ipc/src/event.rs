//! Events pushed from the daemon to subscribed clients.

use std::ops::RangeInclusive;

use ipc_proto::IpcResponse;
use ipc_proto::event::LAGGED;
use serde_json::{Value, json};

/// One event: what happened (`event_type`, see [`crate::event_types`]) and its details.
///
/// On the wire it is an [`IpcResponse::Event`]; a server built on [`EventBus`](crate::EventBus)
/// also gives it its position on the bus, [`seq`](Self::seq).
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// What happened, e.g. `"log_line"`.
    pub event_type: String,
    /// Details; bunctl's events carry the app's name under `"app"`.
    pub data: Value,
    seq: Option<u64>,
}

impl Event {
    /// An event of `event_type` with `data`, and no position.
    pub fn new(event_type: impl Into<String>, data: Value) -> Self {
        Event { event_type: event_type.into(), data, seq: None }
    }

    /// The same event at position `seq`.
    pub fn with_seq(mut self, seq: Option<u64>) -> Self {
        self.seq = seq;
        self
    }

    /// The notice a subscriber gets after falling behind: `missed` events were dropped
    /// (positions unknown).
    pub fn lagged(missed: u64) -> Self {
        Loss { missed, range: None }.notice()
    }

    /// The notice for `missed` lost events, the first and last of them at positions
    /// `first_seq` and `last_seq`.
    pub fn lagged_between(missed: u64, first_seq: u64, last_seq: u64) -> Self {
        Loss { missed, range: Some((first_seq, last_seq)) }.notice()
    }

    /// The event's position on the server's bus: every event published there gets the next
    /// one, starting at 1, whatever its type or app, so a subscriber that filters sees gaps that
    /// are not losses. Below 2^53, so exact as a JavaScript number too. `None` for loss notices,
    /// and for events from a server that gives no positions.
    pub fn seq(&self) -> Option<u64> {
        self.seq
    }

    /// How many events were lost, if this is a `lagged` notice.
    pub fn missed(&self) -> Option<u64> {
        if self.event_type == LAGGED { self.data.get("missed")?.as_u64() } else { None }
    }

    /// The positions of the first and last lost event, if this is a `lagged` notice that
    /// names them (between them, only the [`missed`](Self::missed) ones the subscription
    /// matched were lost).
    pub fn lost_range(&self) -> Option<RangeInclusive<u64>> {
        if self.event_type != LAGGED {
            return None;
        }
        let first = self.data.get("first_seq")?.as_u64()?;
        let last = self.data.get("last_seq")?.as_u64()?;
        Some(first..=last)
    }

    /// The app the event is about (`data.app`), if it names one.
    pub fn app(&self) -> Option<&str> {
        self.data.get("app")?.as_str()
    }

    /// What this notice says was lost, if it is one.
    pub(crate) fn loss(&self) -> Option<Loss> {
        let missed = self.missed()?;
        let range = self.lost_range().map(|r| (*r.start(), *r.end()));
        Some(Loss { missed, range })
    }

    /// What dropping this event loses: what it announced, if it is a notice, or itself.
    pub(crate) fn lost_as(&self) -> Loss {
        self.loss().unwrap_or(Loss::one(self.seq))
    }
}

impl From<Event> for IpcResponse {
    fn from(e: Event) -> Self {
        IpcResponse::Event { event_type: e.event_type, data: e.data }
    }
}

/// Events lost at one point of a subscriber's stream, and where they were: what a `lagged`
/// notice says. The one piece of loss accounting that the bus, the serve loop and the client
/// share.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Loss {
    pub(crate) missed: u64,
    /// The first and last lost position, when every lost event had one.
    pub(crate) range: Option<(u64, u64)>,
}

impl Loss {
    pub(crate) fn is_empty(&self) -> bool {
        self.missed == 0
    }

    /// One lost event, at `seq` if it had a position.
    pub(crate) fn one(seq: Option<u64>) -> Loss {
        Loss { missed: 1, range: seq.map(|s| (s, s)) }
    }

    /// Counts one more lost event, at `seq` if it had a position. Events are lost in order.
    pub(crate) fn add(&mut self, seq: Option<u64>) {
        self.merge(Loss::one(seq));
    }

    /// Adds the losses of `later`, which come after these in the stream.
    pub(crate) fn merge(&mut self, later: Loss) {
        if later.is_empty() {
            return;
        }
        self.range = match (self.is_empty(), self.range, later.range) {
            (true, _, range) => range,
            (false, Some((first, _)), Some((_, last))) => Some((first, last)),
            _ => None,
        };
        self.missed += later.missed;
    }

    /// Adds the losses of `other`, which are not in stream order with these (another app's or
    /// kind's): the range becomes the smallest that covers both.
    pub(crate) fn cover(&mut self, other: Loss) {
        if other.is_empty() {
            return;
        }
        self.range = match (self.is_empty(), self.range, other.range) {
            (true, _, range) => range,
            (false, Some((a, b)), Some((c, d))) => Some((a.min(c), b.max(d))),
            _ => None,
        };
        self.missed += other.missed;
    }

    /// The notice's data: `{"missed": N, "first_seq": A, "last_seq": B}` (the range when known).
    pub(crate) fn data(&self) -> Value {
        match self.range {
            Some((first, last)) => {
                json!({ "missed": self.missed, "first_seq": first, "last_seq": last })
            }
            None => json!({ "missed": self.missed }),
        }
    }

    pub(crate) fn notice(&self) -> Event {
        Event::new(LAGGED, self.data())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn losses_merge_into_one_range_only_when_every_part_has_one() {
        let mut loss = Loss::default();
        loss.add(Some(3));
        loss.add(Some(7));
        assert_eq!(loss, Loss { missed: 2, range: Some((3, 7)) });
        loss.merge(Loss { missed: 5, range: Some((9, 20)) });
        assert_eq!(loss, Loss { missed: 7, range: Some((3, 20)) });
        loss.add(None);
        assert_eq!(loss, Loss { missed: 8, range: None });
        let mut later = Loss::default();
        later.merge(Loss { missed: 1, range: Some((4, 4)) });
        assert_eq!(later.notice().lost_range(), Some(4..=4));
        assert_eq!(later.notice().missed(), Some(1));
    }
}
