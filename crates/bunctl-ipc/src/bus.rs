//! The daemon's event bus: publish once, deliver to every matching subscription.
//!
//! ```text
//!  publish("log_line", Some("web"), data)
//!        │   filter each subscription (SubscriptionType::matches), under one lock
//!        ├──▶ [sub 1: LogEvents{web}]   queue ≤ capacity  ──▶ connection 1
//!        ├──x  sub 2: StatusEvents{*}   (no match: nothing queued, nothing counted)
//!        └──▶ [sub 3: AllEvents{*}]     queue ≤ capacity  ──▶ connection 3
//! ```
//!
//! The user-facing contract and the design rationale are on [`EventBus`].

use std::collections::VecDeque;
use std::fmt;
use std::future::poll_fn;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, Weak};
use std::task::{Context, Poll, Waker};

use bytes::BytesMut;
use futures_core::Stream;
use ipc_proto::event::{EventCategory, LAGGED};
use ipc_proto::{FrameConfig, IpcCodec, IpcResponse, SubscriptionType};
use serde::Serialize;
use serde_json::Value;
use tokio_util::codec::Encoder;
use tracing::{debug, error, trace, warn};

use crate::Event;

/// The queue bound of each subscription unless [`EventBus::with_capacity`] says otherwise:
/// 1024 events.
///
/// Enough to ride out a burst of log output while a client redraws its terminal, small enough
/// that a stalled subscriber costs at most 8 KiB of queue plus the events it pins.
pub const DEFAULT_QUEUE_CAPACITY: usize = 1024;

/// A queue emptied by its subscriber gives back memory above this many slots.
const IDLE_QUEUE_SLOTS: usize = 64;

/// Locks, ignoring poisoning: no code panics while holding these locks, and the data they
/// protect (queues, lists) stays consistent even if one did.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Where a daemon publishes events for its subscribed clients. Cheap to clone: clones share one
/// bus.
///
/// # Guarantees
///
/// * [`publish`](Self::publish) is a plain function: it never awaits, never waits for a
///   subscriber, and does constant work per subscription (a filter check, a short lock, a push).
/// * Each subscription queues at most [`capacity`](Self::capacity) events. When its queue is
///   full the *oldest* event is dropped; the subscriber's next receive first yields one
///   `lagged` event, `{"missed": N}`, with the exact number lost since its previous receive,
///   then the events that were kept, oldest first. Losses are always contiguous and precede the
///   kept events, so the notice stands exactly where the gap is.
/// * The count covers only events that subscription matches: a subscriber narrowed to one app
///   is never lagged by another app's flood, and one that keeps up with its own events misses
///   nothing however busy the bus is.
/// * Events reach every subscription in one global order (publishes are serialized).
/// * Dropping a [`Subscription`] removes it from the bus at once; dropping every `EventBus`
///   handle ends every subscription (receives return `None` once their queues are drained).
///   [`serve`](crate::serve) and the connections it runs hold a handle each, so the bus of a
///   daemon stays open while it serves.
///
/// # Design
///
/// Each subscription owns a bounded queue and the filter runs *before* an event is queued. A
/// single shared ring such as `tokio::sync::broadcast`, filtered at the receivers, was
/// rejected: everyone shares its capacity, so a subscriber narrowed to a quiet app would be
/// lagged by a flood of another app's log lines, lose events it asked for, and be told a
/// `missed` count made mostly of events it would have discarded anyway.
///
/// Memory stays bounded whatever the publish rate: an event is allocated once and shared
/// (`Arc`) by every queue holding it, so the worst case is `subscribers × capacity` queue slots
/// (8 bytes each) plus at most that many distinct events. Its wire frame
/// ([`BusEvent::encoded_frame`]) is encoded once, by the first connection that sends it, and the
/// same bytes are copied to the others; events a slow subscriber loses are never encoded.
///
/// ```
/// use bunctl_ipc::{EventBus, SubscriptionType, event_types};
/// use serde_json::json;
///
/// let bus = EventBus::with_capacity(2);
/// let mut web_logs = bus.subscribe(SubscriptionType::LogEvents { app_name: Some("web".into()) });
///
/// // Delivered to the one matching subscription; `publish` never waits for it.
/// assert_eq!(bus.publish(event_types::LOG_LINE, Some("web"), json!({"line": "a"})), 1);
/// assert_eq!(bus.publish(event_types::LOG_LINE, Some("api"), json!({"line": "x"})), 0);
/// bus.publish(event_types::LOG_LINE, Some("web"), json!({"line": "b"}));
/// bus.publish(event_types::LOG_LINE, Some("web"), json!({"line": "c"}));
///
/// // The queue holds 2: "a" was dropped, and the subscriber is told so before the rest.
/// assert_eq!(web_logs.try_recv().and_then(|e| e.missed()), Some(1));
/// assert_eq!(web_logs.try_recv().unwrap().data()["line"], "b");
/// assert_eq!(web_logs.try_recv().unwrap().data()["line"], "c");
/// assert!(web_logs.try_recv().is_none());
///
/// drop(web_logs);
/// assert_eq!(bus.subscriber_count(), 0);
/// ```
#[derive(Clone)]
pub struct EventBus {
    shared: Arc<Shared>,
}

struct Shared {
    capacity: usize,
    subscribers: Mutex<Vec<Arc<Slot>>>,
    next_id: AtomicU64,
}

impl Drop for Shared {
    fn drop(&mut self) {
        let subscribers = std::mem::take(&mut *lock(&self.subscribers));
        for slot in subscribers {
            let waker = {
                let mut q = lock(&slot.queue);
                q.closed = true;
                q.waker.take()
            };
            if let Some(w) = waker {
                w.wake();
            }
        }
        debug!("event bus closed");
    }
}

/// One subscription's filter and queue.
struct Slot {
    id: u64,
    filter: SubscriptionType,
    /// The filter, pre-digested so that `publish` categorizes an event type once, not once per
    /// subscription. `Slot::accepts` agrees with `SubscriptionType::matches` (tested).
    family: Family,
    app: Option<String>,
    queue: Mutex<Queue>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Status,
    Log,
    All,
}

impl Slot {
    fn accepts(&self, category: EventCategory, app_name: Option<&str>) -> bool {
        let family_ok = match self.family {
            Family::All => true,
            Family::Status => category == EventCategory::Status,
            Family::Log => category == EventCategory::Log,
        };
        family_ok && self.app.as_deref().is_none_or(|wanted| app_name == Some(wanted))
    }
}

#[derive(Default)]
struct Queue {
    events: VecDeque<BusEvent>,
    /// Events dropped since the subscriber last received.
    missed: u64,
    /// Events ever queued here (received, dropped or still queued).
    pushed: u64,
    waker: Option<Waker>,
    /// The bus is gone: no event will ever arrive again.
    closed: bool,
}

impl EventBus {
    /// A bus whose subscriptions each queue at most [`DEFAULT_QUEUE_CAPACITY`] events.
    pub fn new() -> Self {
        Self::with_capacity(DEFAULT_QUEUE_CAPACITY)
    }

    /// A bus whose subscriptions each queue at most `capacity` events (at least 1).
    pub fn with_capacity(capacity: usize) -> Self {
        EventBus {
            shared: Arc::new(Shared {
                capacity: capacity.max(1),
                subscribers: Mutex::new(Vec::new()),
                next_id: AtomicU64::new(0),
            }),
        }
    }

    /// The queue bound of each subscription.
    pub fn capacity(&self) -> usize {
        self.shared.capacity
    }

    /// How many subscriptions are live.
    pub fn subscriber_count(&self) -> usize {
        lock(&self.shared.subscribers).len()
    }

    /// Starts receiving the events that `filter` matches from now on. Events published before
    /// this call are not delivered. Dropping the [`Subscription`] ends it.
    pub fn subscribe(&self, filter: SubscriptionType) -> Subscription {
        let (family, app) = match &filter {
            SubscriptionType::StatusEvents { app_name } => (Family::Status, app_name.clone()),
            SubscriptionType::LogEvents { app_name } => (Family::Log, app_name.clone()),
            SubscriptionType::AllEvents { app_name } => (Family::All, app_name.clone()),
        };
        let slot = Arc::new(Slot {
            id: self.shared.next_id.fetch_add(1, Ordering::Relaxed),
            filter,
            family,
            app,
            queue: Mutex::new(Queue::default()),
        });
        let count = {
            let mut subscribers = lock(&self.shared.subscribers);
            subscribers.push(Arc::clone(&slot));
            subscribers.len()
        };
        debug!(id = slot.id, filter = ?slot.filter, subscribers = count, "subscribed");
        Subscription { slot, bus: Arc::downgrade(&self.shared), capacity: self.shared.capacity }
    }

    /// Delivers an event to every subscription that matches it and returns how many that was.
    ///
    /// `app_name` is what subscriptions narrowed to one app are matched against (see
    /// [`SubscriptionType::matches`]); `data` is sent as is, so bunctl's events repeat the app
    /// under `"app"`. Never blocks: a full queue drops its oldest event instead of waiting.
    /// The event is allocated once, on the first match; with no match, `data` is just dropped.
    ///
    /// `"lagged"` is reserved for the bus's own loss notices, so that a subscriber can trust
    /// every `lagged` event it gets: an event published under that name is delivered to no one
    /// (and logged at `warn!`).
    pub fn publish(&self, event_type: &str, app_name: Option<&str>, data: Value) -> usize {
        if event_type == LAGGED {
            warn!(
                app = app_name,
                "an event named {LAGGED:?} is reserved for loss notices; dropped"
            );
            return 0;
        }
        let category = EventCategory::of(event_type);
        let mut data = Some(data);
        let mut event: Option<BusEvent> = None;
        let mut delivered = 0;
        let subscribers = lock(&self.shared.subscribers);
        for slot in subscribers.iter() {
            if !slot.accepts(category, app_name) {
                continue;
            }
            let event = event.get_or_insert_with(|| {
                BusEvent::new(event_type, app_name, data.take().unwrap_or(Value::Null))
            });
            let (evicted, waker) = {
                let mut q = lock(&slot.queue);
                let evicted = if q.events.len() >= self.shared.capacity {
                    q.missed += 1;
                    q.events.pop_front()
                } else {
                    None
                };
                q.events.push_back(event.clone());
                q.pushed += 1;
                (evicted, q.waker.take())
            };
            drop(evicted);
            if let Some(w) = waker {
                w.wake();
            }
            delivered += 1;
        }
        drop(subscribers);
        trace!(event_type, app = app_name, delivered, "published");
        delivered
    }
}

impl Default for EventBus {
    fn default() -> Self {
        EventBus::new()
    }
}

impl fmt::Debug for EventBus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventBus")
            .field("capacity", &self.shared.capacity)
            .field("subscribers", &self.subscriber_count())
            .finish()
    }
}

/// One subscription to an [`EventBus`]: a filter and a bounded queue of matching events.
///
/// Receive with [`recv`](Self::recv), [`recv_many`](Self::recv_many), [`try_recv`](Self::try_recv)
/// or as a `Stream`. Every receive is cancel-safe: an event is removed from the queue only when
/// it is returned. Dropping the subscription removes it from the bus at once.
///
/// ```
/// use bunctl_ipc::{EventBus, SubscriptionType};
/// use serde_json::json;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let bus = EventBus::new();
/// let mut all = bus.subscribe(SubscriptionType::AllEvents { app_name: None });
/// bus.publish("process_started", Some("web"), json!({"app": "web", "pid": 42}));
///
/// let event = all.recv().await.expect("bus is alive");
/// assert_eq!(event.event_type(), "process_started");
/// assert_eq!(event.app_name(), Some("web"));
/// assert_eq!(event.data()["pid"], 42);
/// # }
/// ```
pub struct Subscription {
    slot: Arc<Slot>,
    bus: Weak<Shared>,
    capacity: usize,
}

impl Subscription {
    /// What this subscription receives.
    pub fn filter(&self) -> &SubscriptionType {
        &self.slot.filter
    }

    /// The most events its queue holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Events queued and not yet received (never more than [`capacity`](Self::capacity)).
    pub fn len(&self) -> usize {
        lock(&self.slot.queue).events.len()
    }

    /// True when no event is queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Events dropped since the last receive, which the next receive reports as `lagged`.
    pub fn missed(&self) -> u64 {
        lock(&self.slot.queue).missed
    }

    /// Events ever delivered to this subscription's queue: a position in its event sequence.
    pub(crate) fn published_count(&self) -> u64 {
        lock(&self.slot.queue).pushed
    }

    /// How many of those have been received, or dropped and reported by a received `lagged`
    /// notice. Once this reaches a `published_count`, every event before that point is settled.
    pub(crate) fn settled_count(&self) -> u64 {
        let q = lock(&self.slot.queue);
        q.pushed - q.events.len() as u64 - q.missed
    }

    /// Ends the subscription and returns how many of its events it never received: those
    /// still queued and those dropped since its last receive. Exact: no event reaches it
    /// after it is removed from the bus, which happens first.
    pub(crate) fn close(mut self) -> u64 {
        self.remove_from_bus();
        let q = lock(&self.slot.queue);
        q.events.len() as u64 + q.missed
    }

    fn remove_from_bus(&mut self) {
        let Some(bus) = std::mem::take(&mut self.bus).upgrade() else { return };
        let remaining = {
            let mut subscribers = lock(&bus.subscribers);
            subscribers.retain(|s| s.id != self.slot.id);
            subscribers.len()
        };
        debug!(id = self.slot.id, subscribers = remaining, "unsubscribed");
    }

    /// True once every [`EventBus`] handle is gone: nothing more will arrive after the queue.
    pub fn is_closed(&self) -> bool {
        lock(&self.slot.queue).closed
    }

    /// The next event if one is queued (a `lagged` notice first if events were dropped).
    pub fn try_recv(&mut self) -> Option<BusEvent> {
        let mut q = lock(&self.slot.queue);
        take_lagged(&mut q).or_else(|| take_one(&mut q))
    }

    /// Waits for the next event; `None` once the bus is gone and the queue is drained.
    /// Cancel-safe.
    pub async fn recv(&mut self) -> Option<BusEvent> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Polls for the next event; the building block of [`recv`](Self::recv).
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<BusEvent>> {
        let mut q = lock(&self.slot.queue);
        if let Some(event) = take_lagged(&mut q).or_else(|| take_one(&mut q)) {
            return Poll::Ready(Some(event));
        }
        if q.closed {
            return Poll::Ready(None);
        }
        register(&mut q, cx);
        Poll::Pending
    }

    /// Waits until at least one event is queued, then moves up to `limit` of them into `buf`
    /// (a `lagged` notice first, if due) under a single lock. Returns how many were added;
    /// `0` only when `limit` is 0 or the bus is gone and the queue drained. Cancel-safe.
    pub async fn recv_many(&mut self, buf: &mut Vec<BusEvent>, limit: usize) -> usize {
        poll_fn(|cx| self.poll_recv_many(cx, buf, limit)).await
    }

    /// Polls for a batch of events; the building block of [`recv_many`](Self::recv_many).
    pub fn poll_recv_many(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut Vec<BusEvent>,
        limit: usize,
    ) -> Poll<usize> {
        if limit == 0 {
            return Poll::Ready(0);
        }
        let mut q = lock(&self.slot.queue);
        let before = buf.len();
        buf.extend(take_lagged(&mut q));
        while buf.len() - before < limit {
            match q.events.pop_front() {
                Some(event) => buf.push(event),
                None => break,
            }
        }
        release_if_idle(&mut q);
        let taken = buf.len() - before;
        if taken > 0 {
            trace!(id = self.slot.id, events = taken, "events received");
            return Poll::Ready(taken);
        }
        if q.closed {
            return Poll::Ready(0);
        }
        register(&mut q, cx);
        Poll::Pending
    }
}

fn take_lagged(q: &mut Queue) -> Option<BusEvent> {
    (q.missed > 0).then(|| BusEvent::lagged(std::mem::take(&mut q.missed)))
}

fn take_one(q: &mut Queue) -> Option<BusEvent> {
    let event = q.events.pop_front();
    release_if_idle(q);
    event
}

/// After a flood, an emptied queue keeps no more than a few slots.
fn release_if_idle(q: &mut Queue) {
    if q.events.is_empty() && q.events.capacity() > IDLE_QUEUE_SLOTS {
        q.events = VecDeque::new();
    }
}

fn register(q: &mut Queue, cx: &mut Context<'_>) {
    match &q.waker {
        Some(w) if w.will_wake(cx.waker()) => {}
        _ => q.waker = Some(cx.waker().clone()),
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.remove_from_bus();
    }
}

impl Stream for Subscription {
    type Item = BusEvent;

    /// Ends once the bus is gone and the queue is drained.
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<BusEvent>> {
        self.get_mut().poll_recv(cx)
    }
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("id", &self.slot.id)
            .field("filter", &self.slot.filter)
            .field("queued", &self.len())
            .field("capacity", &self.capacity)
            .finish()
    }
}

/// An event as the bus hands it out: shared by every subscription that received it, with its
/// wire frame encoded at most once. Cloning is a reference-count increment.
#[derive(Clone)]
pub struct BusEvent(Arc<Inner>);

struct Inner {
    /// The event type, then the app name if there is one: one allocation for both.
    names: Box<str>,
    /// Where the event type ends in `names`.
    type_len: usize,
    has_app: bool,
    /// A loss notice made by the bus, not a published event.
    is_notice: bool,
    data: Value,
    frame: OnceLock<Vec<u8>>,
}

/// Room an event's frame starts with, enough for most without growing.
const FRAME_ROOM: usize = 256;

/// `IpcResponse::Event` by reference, so that encoding needs no copy of the data.
#[derive(Serialize)]
enum WireEvent<'a> {
    Event { event_type: &'a str, data: &'a Value },
}

impl BusEvent {
    fn new(event_type: &str, app_name: Option<&str>, data: Value) -> Self {
        Self::with_kind(event_type, app_name, data, false)
    }

    fn with_kind(event_type: &str, app_name: Option<&str>, data: Value, is_notice: bool) -> Self {
        let names = [event_type, app_name.unwrap_or_default()].concat().into_boxed_str();
        BusEvent(Arc::new(Inner {
            names,
            type_len: event_type.len(),
            has_app: app_name.is_some(),
            is_notice,
            data,
            frame: OnceLock::new(),
        }))
    }

    /// The `lagged` notice: `missed` events were dropped.
    fn lagged(missed: u64) -> Self {
        trace!(missed, "lagged");
        BusEvent::with_kind(LAGGED, None, serde_json::json!({ "missed": missed }), true)
    }

    /// What happened, e.g. `"log_line"`; `"lagged"` for a loss notice.
    pub fn event_type(&self) -> &str {
        &self.0.names[..self.0.type_len]
    }

    /// The app the publisher said the event is about.
    pub fn app_name(&self) -> Option<&str> {
        self.0.has_app.then(|| &self.0.names[self.0.type_len..])
    }

    /// The event's details, as published.
    pub fn data(&self) -> &Value {
        &self.0.data
    }

    /// How many events were dropped, if this is a `lagged` notice.
    pub fn missed(&self) -> Option<u64> {
        if self.0.is_notice { self.0.data.get("missed")?.as_u64() } else { None }
    }

    /// An owned copy as the client sees it.
    pub fn to_event(&self) -> Event {
        Event::new(self.event_type().to_owned(), self.0.data.clone())
    }

    /// The complete wire frame of this event: the 4-byte little-endian length, then the JSON
    /// of `IpcResponse::Event { event_type, data }`. Encoded on first use and shared by every
    /// later caller. Empty only if the event cannot be encoded at all (a payload over 4 GiB).
    ///
    /// ```
    /// use bunctl_ipc::{EventBus, SubscriptionType};
    ///
    /// let bus = EventBus::new();
    /// let mut sub = bus.subscribe(SubscriptionType::AllEvents { app_name: None });
    /// bus.publish("ping", None, serde_json::json!(1));
    /// let frame = sub.try_recv().unwrap().encoded_frame().to_vec();
    /// assert_eq!(&frame[4..], br#"{"Event":{"event_type":"ping","data":1}}"#);
    /// assert_eq!(frame[..4], (frame.len() as u32 - 4).to_le_bytes());
    /// ```
    pub fn encoded_frame(&self) -> &[u8] {
        if let Some(frame) = self.0.frame.get() {
            return frame;
        }
        // Encoded outside the cell, so that connections on other threads never wait for one
        // another; if two race, one copy is dropped.
        let frame = self.encode();
        self.0.frame.get_or_init(|| frame)
    }

    fn encode(&self) -> Vec<u8> {
        let wire = WireEvent::Event { event_type: self.event_type(), data: &self.0.data };
        let mut codec = IpcCodec::<(), WireEvent<'_>>::with_config(
            FrameConfig::new().with_max_message_size(usize::MAX),
        );
        let mut buf = BytesMut::with_capacity(FRAME_ROOM);
        match codec.encode(&wire, &mut buf) {
            // A `Vec` rather than `Bytes`: freezing a partly filled buffer would allocate a
            // second time.
            Ok(()) => buf.into(),
            Err(e) => {
                error!(event_type = %self.event_type(), error = %e, "event cannot be encoded");
                Vec::new()
            }
        }
    }
}

impl From<&BusEvent> for Event {
    fn from(e: &BusEvent) -> Self {
        e.to_event()
    }
}

impl From<&BusEvent> for IpcResponse {
    fn from(e: &BusEvent) -> Self {
        e.to_event().into()
    }
}

impl fmt::Debug for BusEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BusEvent")
            .field("event_type", &self.event_type())
            .field("app_name", &self.app_name())
            .field("data", &self.0.data)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipc_proto::ServerCodec;
    use ipc_proto::event::{
        LOG_LINE, PROCESS_CRASHED, PROCESS_EXITED, PROCESS_RESTARTING, PROCESS_STARTED,
        STATUS_CHANGE,
    };

    #[test]
    fn slot_filter_agrees_with_the_protocol_filter() {
        let bus = EventBus::new();
        for app in [None, Some("web")] {
            let a = app.map(str::to_owned);
            for filter in [
                SubscriptionType::StatusEvents { app_name: a.clone() },
                SubscriptionType::LogEvents { app_name: a.clone() },
                SubscriptionType::AllEvents { app_name: a.clone() },
            ] {
                let sub = bus.subscribe(filter.clone());
                for ty in [
                    STATUS_CHANGE,
                    PROCESS_STARTED,
                    PROCESS_EXITED,
                    PROCESS_CRASHED,
                    PROCESS_RESTARTING,
                    LOG_LINE,
                    LAGGED,
                    "custom",
                ] {
                    for event_app in [None, Some("web"), Some("api")] {
                        assert_eq!(
                            sub.slot.accepts(EventCategory::of(ty), event_app),
                            filter.matches(ty, event_app),
                            "{filter:?} vs ({ty}, {event_app:?})"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn encoded_frame_is_the_codec_encoding_of_the_response() {
        let bus = EventBus::new();
        let mut sub = bus.subscribe(SubscriptionType::AllEvents { app_name: None });
        let data =
            serde_json::json!({"app": "web", "line": "héllo \"quoted\"", "n": [1, 2.5, null]});
        bus.publish(LOG_LINE, Some("web"), data.clone());
        let event = sub.try_recv().expect("queued");
        let mut expected = BytesMut::new();
        ServerCodec::new()
            .encode(&IpcResponse::Event { event_type: LOG_LINE.into(), data }, &mut expected)
            .expect("encodes");
        assert_eq!(event.encoded_frame(), &expected[..]);
        // Shared, not re-encoded.
        assert_eq!(event.encoded_frame().as_ptr(), event.clone().encoded_frame().as_ptr());
    }

    #[test]
    fn emptied_queue_gives_back_its_memory() {
        let bus = EventBus::with_capacity(10_000);
        let mut sub = bus.subscribe(SubscriptionType::AllEvents { app_name: None });
        for i in 0..5_000 {
            bus.publish("x", None, Value::from(i));
        }
        let mut buf = Vec::new();
        let waker = Waker::noop();
        let mut cx = Context::from_waker(waker);
        assert_eq!(sub.poll_recv_many(&mut cx, &mut buf, usize::MAX), Poll::Ready(5_000));
        assert!(lock(&sub.slot.queue).events.capacity() <= IDLE_QUEUE_SLOTS);
    }

    #[test]
    fn dropping_the_bus_ends_subscriptions_after_their_queue() {
        let bus = EventBus::new();
        let mut sub = bus.subscribe(SubscriptionType::AllEvents { app_name: None });
        bus.publish("x", None, Value::Null);
        drop(bus);
        assert!(sub.is_closed());
        let waker = Waker::noop();
        let mut cx = Context::from_waker(waker);
        assert!(matches!(sub.poll_recv(&mut cx), Poll::Ready(Some(_))));
        assert!(matches!(sub.poll_recv(&mut cx), Poll::Ready(None)));
    }
}
