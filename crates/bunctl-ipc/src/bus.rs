//! The daemon's event bus: publish once, deliver to every matching subscription, keep the most
//! recent events of each app for replay.
//!
//! ```text
//!  publish("log_line", Some("web"), data)          seq 42, encoded once
//!        │   under one lock: only the subscriptions of app "web" and of every app are visited
//!        ├──▶ [sub 1: LogEvents{web}]   queue ≤ capacity (events, bytes)  ──▶ connection 1
//!        ├──x  sub 2: StatusEvents{*}   (no match: nothing queued, nothing counted)
//!        ├──▶ [sub 3: AllEvents{*}]     queue ≤ capacity (events, bytes)  ──▶ connection 3
//!        └──▶ [kept: web, logs]        ≤ retention (events, bytes)       ──▶ history()
//! ```
//!
//! The user-facing contract and the design rationale are on [`EventBus`].

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::future::poll_fn;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, Weak};
use std::task::{Context, Poll, Waker};

use bytes::BytesMut;
use futures_core::Stream;
use ipc_proto::event::{EventCategory, LAGGED, RESET};
use ipc_proto::{FrameConfig, IpcCodec, IpcResponse, SubscriptionType};
use serde::Serialize;
use serde_json::Value;
use tokio_util::codec::Encoder;
use tracing::{debug, error, trace, warn};

use crate::Event;
use crate::event::Loss;
use crate::queue::{LaggingQueue, Queued, Window};

/// The queue bound of each subscription, in events, unless [`BusOptions`] say otherwise: 1024.
///
/// Enough to ride out a burst of log output while a client redraws its terminal, small enough
/// that a stalled subscriber holds at most 1024 events (and at most [`DEFAULT_QUEUE_BYTES`] of
/// them).
pub const DEFAULT_QUEUE_CAPACITY: usize = 1024;
/// The queue bound of each subscription, in bytes of encoded events: 1 MiB.
pub const DEFAULT_QUEUE_BYTES: usize = 1 << 20;
/// How many of the most recent events the bus keeps for each app and kind (status, log,
/// other), for [`EventBus::history`]: 1000.
pub const DEFAULT_RETAINED_EVENTS: usize = 1000;
/// How many bytes of encoded events the bus keeps for each app and kind: 1 MiB.
pub const DEFAULT_RETAINED_BYTES: usize = 1 << 20;

/// A queue emptied by its subscriber gives back memory above this many slots.
const IDLE_QUEUE_SLOTS: usize = 64;

/// Room an event's frame starts with, enough for most without growing.
const FRAME_ROOM: usize = 256;

/// Locks, ignoring poisoning: no code panics while holding these locks, and the data they
/// protect (queues, lists) stays consistent even if one did.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The bounds of an [`EventBus`]: each subscription's queue, and what it keeps for replay.
///
/// ```
/// use bunctl_ipc::{BusOptions, EventBus};
///
/// let bus = EventBus::with_options(
///     BusOptions::new().with_queue_capacity(256).with_retained_events(100),
/// );
/// assert_eq!(bus.options().queue_capacity(), 256);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BusOptions {
    queue_capacity: usize,
    queue_bytes: usize,
    retained_events: usize,
    retained_bytes: usize,
}

impl BusOptions {
    /// [`DEFAULT_QUEUE_CAPACITY`], [`DEFAULT_QUEUE_BYTES`], [`DEFAULT_RETAINED_EVENTS`],
    /// [`DEFAULT_RETAINED_BYTES`].
    pub const fn new() -> Self {
        BusOptions {
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            queue_bytes: DEFAULT_QUEUE_BYTES,
            retained_events: DEFAULT_RETAINED_EVENTS,
            retained_bytes: DEFAULT_RETAINED_BYTES,
        }
    }

    /// Each subscription queues at most this many events (at least 1).
    pub const fn with_queue_capacity(mut self, events: usize) -> Self {
        self.queue_capacity = if events == 0 { 1 } else { events };
        self
    }

    /// Each subscription queues at most this many bytes of encoded events (it always keeps
    /// the newest event, however large).
    pub const fn with_queue_bytes(mut self, bytes: usize) -> Self {
        self.queue_bytes = bytes;
        self
    }

    /// The bus keeps at most this many of the most recent events of each app and kind
    /// (0: none).
    pub const fn with_retained_events(mut self, events: usize) -> Self {
        self.retained_events = events;
        self
    }

    /// The bus keeps at most this many bytes of encoded events of each app and kind.
    pub const fn with_retained_bytes(mut self, bytes: usize) -> Self {
        self.retained_bytes = bytes;
        self
    }

    /// See [`with_queue_capacity`](Self::with_queue_capacity).
    pub const fn queue_capacity(&self) -> usize {
        self.queue_capacity
    }

    /// See [`with_queue_bytes`](Self::with_queue_bytes).
    pub const fn queue_bytes(&self) -> usize {
        self.queue_bytes
    }

    /// See [`with_retained_events`](Self::with_retained_events).
    pub const fn retained_events(&self) -> usize {
        self.retained_events
    }

    /// See [`with_retained_bytes`](Self::with_retained_bytes).
    pub const fn retained_bytes(&self) -> usize {
        self.retained_bytes
    }
}

impl Default for BusOptions {
    fn default() -> Self {
        BusOptions::new()
    }
}

/// Where a daemon publishes events for its subscribed clients. Cheap to clone: clones share one
/// bus.
///
/// # Guarantees
///
/// * [`publish`](Self::publish) is a plain function: it never awaits and never waits for a
///   subscriber. It visits only the subscriptions that may match (those of the event's app and
///   those of every app): a subscription to another app costs it nothing.
/// * Every published event gets a position, [`BusEvent::seq`]: 1 for the bus's first event,
///   then one more for each, whatever its type or app. A subscriber that filters sees gaps in
///   positions that are not losses. Positions stay below 2^53 (exact as JavaScript numbers).
///   Every bus also has an [`instance`](Self::instance), made at random, so that positions of
///   one bus are never taken for another's (a restarted daemon's).
/// * Each subscription queues at most [`BusOptions::queue_capacity`] events and
///   [`BusOptions::queue_bytes`] bytes. When its queue is full the *oldest* event is dropped;
///   the subscriber's next receive first yields one `lagged` event,
///   `{"missed": N, "first_seq": A, "last_seq": B}`: N events it matched were lost since its
///   previous receive, the first of them at position A and the last at B. Losses are always
///   contiguous and precede the kept events, so the notice stands exactly where the gap is.
/// * The count covers only events that subscription matches: a subscriber narrowed to one app
///   is never lagged by another app's flood, and one that keeps up with its own events misses
///   nothing however busy the bus is.
/// * Events reach every subscription in one global order, that of their positions, even when
///   several threads publish at once.
/// * The bus keeps the most recent events of each app and kind (status, log, other), at most
///   [`BusOptions::retained_events`] and [`BusOptions::retained_bytes`] of each, for
///   [`history`](Self::history): one app's flood never evicts another app's events.
/// * Memory is bounded whatever the subscribers do: the kept events, plus for each
///   subscription at most its queue bound (events are shared, so usually far less).
/// * Dropping a [`Subscription`] removes it from the bus at once; dropping every `EventBus`
///   handle ends every subscription (receives return `None` once their queues are drained).
///   [`serve`](crate::serve) and the connections it runs hold a handle each, so the bus of a
///   daemon stays open while it serves.
/// * `"lagged"` and `"reset"` are reserved for notices: an event published under either name is
///   delivered to no one.
///
/// ```
/// use bunctl_ipc::{BusOptions, EventBus, SubscriptionType, event_types};
/// use serde_json::json;
///
/// let bus = EventBus::with_options(BusOptions::new().with_queue_capacity(2));
/// let mut web_logs = bus.subscribe(SubscriptionType::LogEvents { app_name: Some("web".into()) });
///
/// // Delivered to the one matching subscription; `publish` never waits for it.
/// assert_eq!(bus.publish(event_types::LOG_LINE, Some("web"), json!({"line": "a"})), 1);
/// assert_eq!(bus.publish(event_types::LOG_LINE, Some("api"), json!({"line": "x"})), 0);
/// bus.publish(event_types::LOG_LINE, Some("web"), json!({"line": "b"}));
/// bus.publish(event_types::LOG_LINE, Some("web"), json!({"line": "c"}));
///
/// // The queue holds 2: "a" (position 1) was dropped, and the subscriber is told so first.
/// let notice = web_logs.try_recv().unwrap();
/// assert_eq!((notice.missed(), notice.lost_range()), (Some(1), Some(1..=1)));
/// let b = web_logs.try_recv().unwrap();
/// assert_eq!((b.data()["line"].as_str(), b.seq()), (Some("b"), Some(3)));
/// assert_eq!(web_logs.try_recv().unwrap().data()["line"], "c");
/// assert!(web_logs.try_recv().is_none());
///
/// drop(web_logs);
/// assert_eq!(bus.subscriber_count(), 0);
/// ```
// Design: Each subscription owns a bounded queue and the filter runs *before* an event is queued;
// subscriptions are indexed by app, so that a publish looks only at those that can match. A single
// shared ring such as `tokio::sync::broadcast`, filtered at the receivers, was rejected: everyone
// shares its capacity, so a subscriber narrowed to a quiet app would be lagged by a flood of
// another app's log lines, lose events it asked for, and be told a `missed` count made mostly of
// events it would have discarded anyway; and every receiver would be woken for every event. An
// event is encoded once, when it is published, and its frame is shared (`Arc`) by every queue
// holding it and by the replay store.
#[derive(Clone)]
pub struct EventBus {
    shared: Arc<Shared>,
}

struct Shared {
    options: BusOptions,
    instance: Box<str>,
    created: std::time::Instant,
    /// Connections that `serve` runs with this bus, open now.
    serving: AtomicUsize,
    state: Mutex<State>,
    /// The last position whose deliveries are all queued: written after them, under the lock.
    published: AtomicU64,
    /// Events dropped from subscriptions' queues, over the bus's life.
    lost: AtomicU64,
    next_id: AtomicU64,
}

#[derive(Default)]
struct State {
    seq: u64,
    /// Subscriptions for every app, then those narrowed to one, by app.
    any_app: Vec<Arc<Slot>>,
    by_app: HashMap<Box<str>, Vec<Arc<Slot>>>,
    /// Kept events, by app (looked up by `&str`, so that publishing allocates no key), and
    /// those about no app; each by kind.
    kept: HashMap<Box<str>, Kinds>,
    kept_unnamed: Kinds,
    /// Where events are encoded before their frame is copied out at its exact size.
    scratch: BytesMut,
}

impl State {
    fn subscriber_count(&self) -> usize {
        self.any_app.len() + self.by_app.values().map(Vec::len).sum::<usize>()
    }

    fn remove(&mut self, slot: &Slot) -> usize {
        let list = match &slot.app {
            None => Some(&mut self.any_app),
            Some(app) => self.by_app.get_mut(app),
        };
        if let Some(list) = list {
            list.retain(|s| s.id != slot.id);
        }
        if let Some(app) = &slot.app
            && self.by_app.get(app).is_some_and(Vec::is_empty)
        {
            self.by_app.remove(app);
        }
        self.subscriber_count()
    }
}

/// One app's kept events (the most recent ones), by kind.
#[derive(Default)]
struct Kinds([Kept; 3]);

/// The most recent events of one app and kind, and what was dropped to keep it bounded.
#[derive(Default)]
struct Kept {
    window: Window<BusEvent>,
    /// The events dropped from `window`: how many, and the first and last of them.
    forgotten: Loss,
    /// The positions of the most recently dropped ones, as many as the window keeps events
    /// (8 bytes each, next to events of a hundred bytes or more): what makes a resume's
    /// notice exact for a cursor among them.
    recent: VecDeque<u64>,
}

/// Notes that `old` was dropped from a window: counted in `forgotten`, its position among the
/// `remember` most recent in `recent`.
fn forget(forgotten: &mut Loss, recent: &mut VecDeque<u64>, old: BusEvent, remember: usize) {
    forgotten.add(old.seq());
    if let Some(seq) = old.seq() {
        if recent.len() >= remember {
            recent.pop_front();
        }
        recent.push_back(seq);
    }
}

impl Kept {
    /// What a follower resuming after position `after` lost of this app and kind. Exact when
    /// `after` is before the first forgotten event, among the most recently forgotten ones, or
    /// after the last; before those, the bus no longer knows how many of the older ones came
    /// after it and counts them all (never fewer than were lost).
    fn lost_after(&self, after: u64) -> Loss {
        let Some((first, last)) = self.forgotten.range else { return Loss::default() };
        if last <= after {
            return Loss::default();
        }
        match self.recent.front() {
            // Everything forgotten after `after` is remembered.
            Some(&oldest) if first <= after && oldest <= after => {
                let mut lost = Loss::default();
                for &seq in self.recent.iter().filter(|&&seq| seq > after) {
                    lost.add(Some(seq));
                }
                lost
            }
            _ => self.forgotten,
        }
    }
}

impl Kinds {
    const CATEGORIES: [EventCategory; 3] =
        [EventCategory::Status, EventCategory::Log, EventCategory::Other];

    fn of(&mut self, category: EventCategory) -> &mut Kept {
        let i = match category {
            EventCategory::Status => 0,
            EventCategory::Log => 1,
            EventCategory::Other => 2,
        };
        &mut self.0[i]
    }

    fn iter(&self) -> impl Iterator<Item = (EventCategory, &Kept)> {
        Self::CATEGORIES.into_iter().zip(&self.0)
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        let state = std::mem::take(&mut *lock(&self.state));
        for slot in state.any_app.iter().chain(state.by_app.values().flatten()) {
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
    app: Option<Box<str>>,
    queue: Mutex<Queue>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Status,
    Log,
    All,
}

impl Family {
    fn of(filter: &SubscriptionType) -> Family {
        match filter {
            SubscriptionType::StatusEvents { .. } => Family::Status,
            SubscriptionType::LogEvents { .. } => Family::Log,
            SubscriptionType::AllEvents { .. } => Family::All,
        }
    }

    fn accepts(self, category: EventCategory) -> bool {
        match self {
            Family::All => true,
            Family::Status => category == EventCategory::Status,
            Family::Log => category == EventCategory::Log,
        }
    }
}

impl Slot {
    #[cfg(test)]
    fn accepts(&self, category: EventCategory, app_name: Option<&str>) -> bool {
        self.family.accepts(category)
            && self.app.as_deref().is_none_or(|wanted| app_name == Some(wanted))
    }
}

#[derive(Default)]
struct Queue {
    /// The events not yet received, and those dropped since the subscriber last received.
    events: LaggingQueue<BusEvent>,
    waker: Option<Waker>,
    /// The bus is gone: no event will ever arrive again.
    closed: bool,
}

impl Queue {
    /// Queues `event`, dropping the oldest while the queue is over its bounds. Returns how
    /// many were dropped.
    fn push(&mut self, event: BusEvent, options: &BusOptions) -> u64 {
        self.events.push(event, options.queue_capacity, options.queue_bytes)
    }
}

/// A random identifier of 128 bits, in hex.
fn random_instance() -> Box<str> {
    let mut bytes = [0u8; 16];
    if let Err(e) = getrandom::fill(&mut bytes) {
        // Still distinct from other buses of this process and, almost surely, of others.
        warn!(error = %e, "no OS randomness; the bus instance is made from the time and pid");
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
        let nanos = now.map_or(0, |d| d.as_nanos());
        bytes = (nanos ^ (u128::from(std::process::id()) << 96)).to_le_bytes();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect::<String>().into_boxed_str()
}

impl EventBus {
    /// A bus with the default [`BusOptions`].
    pub fn new() -> Self {
        Self::with_options(BusOptions::new())
    }

    /// A bus whose subscriptions each queue at most `capacity` events (at least 1), with the
    /// other [`BusOptions`] at their defaults.
    pub fn with_capacity(capacity: usize) -> Self {
        Self::with_options(BusOptions::new().with_queue_capacity(capacity))
    }

    /// A bus with the given bounds.
    pub fn with_options(options: BusOptions) -> Self {
        EventBus {
            shared: Arc::new(Shared {
                options,
                instance: random_instance(),
                created: std::time::Instant::now(),
                serving: AtomicUsize::new(0),
                state: Mutex::new(State::default()),
                published: AtomicU64::new(0),
                lost: AtomicU64::new(0),
                next_id: AtomicU64::new(0),
            }),
        }
    }

    /// The queue bound of each subscription, in events.
    pub fn capacity(&self) -> usize {
        self.shared.options.queue_capacity
    }

    /// The bus's bounds.
    pub fn options(&self) -> &BusOptions {
        &self.shared.options
    }

    /// This bus's identity: 32 hex digits made at random when it was created. Positions
    /// ([`BusEvent::seq`]) are meaningful only together with it.
    pub fn instance(&self) -> &str {
        &self.shared.instance
    }

    /// The position of the last event published (0 before the first).
    pub fn last_seq(&self) -> u64 {
        self.shared.published.load(Ordering::Acquire)
    }

    /// Events dropped from subscriptions' queues because their subscribers fell behind, over
    /// the bus's life (each subscription's loss counted once).
    pub fn lost_count(&self) -> u64 {
        self.shared.lost.load(Ordering::Relaxed)
    }

    /// How many subscriptions are live.
    pub fn subscriber_count(&self) -> usize {
        lock(&self.shared.state).subscriber_count()
    }

    /// How long ago the bus was created.
    pub fn uptime(&self) -> std::time::Duration {
        self.shared.created.elapsed()
    }

    /// Connections that [`serve`](crate::serve) runs with this bus, open now.
    pub(crate) fn serving_count(&self) -> usize {
        self.shared.serving.load(Ordering::Relaxed)
    }

    /// A handle that counts as one served connection while it lives.
    pub(crate) fn serving(&self) -> Serving {
        self.shared.serving.fetch_add(1, Ordering::Relaxed);
        Serving(self.clone())
    }

    /// Starts receiving the events that `filter` matches from now on. Events published before
    /// this call are not delivered (see [`follow`](Self::follow) and
    /// [`history`](Self::history) for those). Dropping the [`Subscription`] ends it.
    pub fn subscribe(&self, filter: SubscriptionType) -> Subscription {
        self.follow(filter, Replay::None)
    }

    /// Like [`subscribe`](Self::subscribe), starting with the kept events that `replay` asks
    /// for: history, then live events, with no gap and no duplicate between them (the
    /// subscription starts and the replay is taken at one instant, between two publishes).
    /// [`Subscription::boundary`] is that instant: replayed events are at or below it, live
    /// ones above it.
    ///
    /// With [`Replay::After`], events after the cursor that the bus no longer keeps are
    /// announced first, in one `lagged` notice whose range covers them. For each app and kind
    /// the bus remembers the positions of as many forgotten events as it keeps: the notice is
    /// exact when the cursor is older than everything it forgot, among or after those it
    /// remembers. A cursor older than those (but not than the first forgotten) leaves the bus
    /// unable to tell how many came after it: it then counts them all, so the notice
    /// over-counts (its `first_seq` is then at or before the cursor) and never under-counts.
    ///
    /// ```
    /// use bunctl_ipc::{EventBus, Replay, SubscriptionType};
    /// use serde_json::json;
    ///
    /// let bus = EventBus::new();
    /// for line in ["a", "b", "c"] {
    ///     bus.publish("log_line", Some("web"), json!({ "line": line }));
    /// }
    /// let logs = SubscriptionType::LogEvents { app_name: Some("web".into()) };
    /// let mut sub = bus.follow(logs.clone(), Replay::Last(2));
    /// bus.publish("log_line", Some("web"), json!({ "line": "d" }));
    /// let lines: Vec<_> = std::iter::from_fn(|| sub.try_recv())
    ///     .map(|e| (e.seq().unwrap(), e.data()["line"].as_str().unwrap().to_owned()))
    ///     .collect();
    /// assert_eq!(lines, [(2, "b".into()), (3, "c".into()), (4, "d".into())]);
    /// assert_eq!(sub.boundary(), 3);
    ///
    /// // Resuming after position 3 replays nothing that was seen.
    /// let mut again = bus.follow(logs, Replay::After(3));
    /// assert_eq!(again.try_recv().unwrap().seq(), Some(4));
    /// ```
    pub fn follow(&self, filter: SubscriptionType, replay: Replay) -> Subscription {
        let slot = Arc::new(Slot {
            id: self.shared.next_id.fetch_add(1, Ordering::Relaxed),
            family: Family::of(&filter),
            app: filter.app_name().map(Box::from),
            filter,
            queue: Mutex::new(Queue::default()),
        });
        let (count, replay, boundary) = {
            let mut state = lock(&self.shared.state);
            let replay = replay_of(&state, &slot.filter, replay);
            match &slot.app {
                None => state.any_app.push(Arc::clone(&slot)),
                Some(app) => state.by_app.entry(app.clone()).or_default().push(Arc::clone(&slot)),
            }
            (state.subscriber_count(), replay, state.seq)
        };
        debug!(
            id = slot.id,
            filter = ?slot.filter,
            subscribers = count,
            replay = replay.len(),
            boundary,
            "subscribed"
        );
        let capacity = self.capacity();
        Subscription { slot, bus: Arc::downgrade(&self.shared), capacity, replay, boundary }
    }

    /// Delivers an event to every subscription that matches it and returns how many that was.
    ///
    /// `app_name` is what subscriptions narrowed to one app are matched against (see
    /// [`SubscriptionType::matches`]); `data` is sent as is, so bunctl's events repeat the app
    /// under `"app"`. Never blocks: a full queue drops its oldest event instead of waiting.
    /// The event gets the bus's next position and is kept for [`history`](Self::history).
    ///
    /// `"lagged"` and `"reset"` are reserved for notices, so that a subscriber can trust every
    /// such event it gets: an event published under either name is delivered to no one (and
    /// logged at `warn!`).
    pub fn publish(&self, event_type: &str, app_name: Option<&str>, data: Value) -> usize {
        if event_type == LAGGED || event_type == RESET {
            warn!(app = app_name, "an event named {event_type:?} is reserved for notices; dropped");
            return 0;
        }
        let category = EventCategory::of(event_type);
        let options = &self.shared.options;
        let mut delivered = 0;
        let mut lost = 0;
        let mut state = lock(&self.shared.state);
        let seq = state.seq + 1;
        state.seq = seq;
        let event = BusEvent::new(seq, event_type, app_name, data, &mut state.scratch);
        let targets = app_name.and_then(|app| state.by_app.get(app));
        for slot in state.any_app.iter().chain(targets.into_iter().flatten()) {
            if !slot.family.accepts(category) {
                continue;
            }
            let waker = {
                let mut q = lock(&slot.queue);
                lost += q.push(event.clone(), options);
                q.waker.take()
            };
            if let Some(w) = waker {
                w.wake();
            }
            delivered += 1;
        }
        keep(&mut state, event, app_name, category, options);
        // After the deliveries: whoever reads this position finds them queued.
        self.shared.published.store(seq, Ordering::Release);
        drop(state);
        if lost > 0 {
            self.shared.lost.fetch_add(lost, Ordering::Relaxed);
        }
        trace!(event_type, app = app_name, seq, delivered, "published");
        delivered
    }

    /// The kept events that `filter` matches, oldest first: the most recent ones of each app
    /// and kind (see [`BusOptions`]).
    pub fn history(&self, filter: &SubscriptionType) -> Vec<BusEvent> {
        let state = lock(&self.shared.state);
        let mut events: Vec<BusEvent> =
            matching_kept(&state, filter).flat_map(|kept| kept.window.iter().cloned()).collect();
        drop(state);
        events.sort_unstable_by_key(|e| e.0.seq);
        events
    }
}

/// Keeps `event` among the most recent of its app and kind.
fn keep(
    state: &mut State,
    event: BusEvent,
    app_name: Option<&str>,
    category: EventCategory,
    options: &BusOptions,
) {
    if options.retained_events == 0 {
        return;
    }
    let kinds = match app_name {
        None => &mut state.kept_unnamed,
        Some(app) => {
            // Two lookups rather than a key allocated per event.
            if !state.kept.contains_key(app) {
                state.kept.insert(app.into(), Kinds::default());
            }
            match state.kept.get_mut(app) {
                Some(kinds) => kinds,
                None => return,
            }
        }
    };
    let Kept { window, forgotten, recent } = kinds.of(category);
    let remember = options.retained_events;
    window.push(event, remember, options.retained_bytes, |old| {
        forget(forgotten, recent, old, remember)
    });
}

/// The kept events of every app and kind that `filter` matches.
fn matching_kept<'a>(
    state: &'a State,
    filter: &'a SubscriptionType,
) -> impl Iterator<Item = &'a Kept> + 'a {
    let family = Family::of(filter);
    let named = state.kept.iter().map(|(app, kinds)| (Some(&**app), kinds));
    named
        .chain([(None, &state.kept_unnamed)])
        .filter(move |(app, _)| filter.app_name().is_none_or(|wanted| *app == Some(wanted)))
        .flat_map(|(_, kinds)| kinds.iter())
        .filter(move |(category, _)| family.accepts(*category))
        .map(|(_, kept)| kept)
}

/// What a follower gets before live events: a `lagged` notice for what was forgotten, if
/// anything was, then kept events, oldest first.
fn replay_of(state: &State, filter: &SubscriptionType, replay: Replay) -> VecDeque<BusEvent> {
    let after = match replay {
        Replay::None | Replay::Last(0) => return VecDeque::new(),
        Replay::Last(_) => 0,
        Replay::After(seq) => seq,
    };
    let mut lost = Loss::default();
    let mut events = Vec::new();
    for kept in matching_kept(state, filter) {
        if matches!(replay, Replay::After(_)) {
            lost.cover(kept.lost_after(after));
        }
        let newer = kept.window.iter().rev().take_while(|e| e.0.seq > after);
        events.extend(newer.cloned());
    }
    events.sort_unstable_by_key(|e| e.0.seq);
    if let Replay::Last(n) = replay {
        events.drain(..events.len().saturating_sub(n));
    }
    let notice = (!lost.is_empty()).then(|| BusEvent::notice(lost));
    notice.into_iter().chain(events).collect()
}

impl Default for EventBus {
    fn default() -> Self {
        EventBus::new()
    }
}

impl fmt::Debug for EventBus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventBus")
            .field("instance", &self.instance())
            .field("options", &self.shared.options)
            .field("last_seq", &self.last_seq())
            .field("subscribers", &self.subscriber_count())
            .finish()
    }
}

/// An [`EventBus`] handle held by a served connection, counted in
/// [`EventBus::serving_count`] while it lives.
pub(crate) struct Serving(EventBus);

impl std::ops::Deref for Serving {
    type Target = EventBus;

    fn deref(&self) -> &EventBus {
        &self.0
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        self.0.shared.serving.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Where a subscription made by [`EventBus::follow`] starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replay {
    /// Nothing before the subscription, as [`EventBus::subscribe`].
    None,
    /// The last `n` kept events that match.
    Last(usize),
    /// Every kept event that matches after this position, with a `lagged` notice first for
    /// those no longer kept.
    After(u64),
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
/// assert_eq!(event.seq(), Some(1));
/// # }
/// ```
pub struct Subscription {
    slot: Arc<Slot>,
    bus: Weak<Shared>,
    capacity: usize,
    /// Kept events taken when it started ([`EventBus::follow`]), received before the queue.
    replay: VecDeque<BusEvent>,
    boundary: u64,
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

    /// The position of the last event published when the subscription started: replayed
    /// events are at or below it, live ones above it.
    pub fn boundary(&self) -> u64 {
        self.boundary
    }

    /// Events waiting to be received: the replay left (see [`EventBus::follow`]), then the
    /// queue (which never holds more than [`capacity`](Self::capacity)).
    pub fn len(&self) -> usize {
        self.replay.len() + lock(&self.slot.queue).events.window().len()
    }

    /// True when no event is queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Events dropped since the last receive, which the next receive reports as `lagged`.
    pub fn missed(&self) -> u64 {
        lock(&self.slot.queue).events.lost().missed
    }

    /// True once nothing at or before position `seq` is left to receive: no such event is
    /// queued and no loss among them is unannounced.
    pub(crate) fn is_settled_through(&self, seq: u64) -> bool {
        if self.replay.front().is_some_and(|e| e.0.seq <= seq) {
            return false;
        }
        let q = lock(&self.slot.queue);
        !loss_through(q.events.lost(), seq)
            && q.events.window().front().is_none_or(|e| e.0.seq > seq)
    }

    /// Ends the subscription and returns what it never received: its queued events and those
    /// dropped since its last receive. Exact: no event reaches it after it is removed from the
    /// bus, which happens first.
    pub(crate) fn close(mut self) -> Loss {
        self.remove_from_bus();
        let mut loss = Loss::default();
        for event in &self.replay {
            loss.merge(event.lost_as());
        }
        loss.merge(lock(&self.slot.queue).events.unreceived());
        loss
    }

    fn remove_from_bus(&mut self) {
        let Some(bus) = std::mem::take(&mut self.bus).upgrade() else { return };
        let remaining = lock(&bus.state).remove(&self.slot);
        debug!(id = self.slot.id, subscribers = remaining, "unsubscribed");
    }

    /// True once every [`EventBus`] handle is gone: nothing more will arrive after the queue.
    pub fn is_closed(&self) -> bool {
        lock(&self.slot.queue).closed
    }

    /// The next event if one is queued (a `lagged` notice first if events were dropped).
    pub fn try_recv(&mut self) -> Option<BusEvent> {
        if let Some(event) = self.replay.pop_front() {
            return Some(event);
        }
        take_one(&mut lock(&self.slot.queue))
    }

    /// Waits for the next event; `None` once the bus is gone and the queue is drained.
    /// Cancel-safe.
    pub async fn recv(&mut self) -> Option<BusEvent> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// The poll form of [`recv`](Self::recv), for hand-written futures: the same result and
    /// cancel-safety.
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<BusEvent>> {
        if let Some(event) = self.replay.pop_front() {
            return Poll::Ready(Some(event));
        }
        let mut q = lock(&self.slot.queue);
        if let Some(event) = take_one(&mut q) {
            return Poll::Ready(Some(event));
        }
        if q.closed {
            return Poll::Ready(None);
        }
        register(&mut q, cx);
        Poll::Pending
    }

    /// Waits until at least one event is queued, then moves up to `limit` of them into `buf`
    /// (a `lagged` notice first, if due) at once. Returns how many were added;
    /// `0` only when `limit` is 0 or the bus is gone and the queue drained. Cancel-safe.
    pub async fn recv_many(&mut self, buf: &mut Vec<BusEvent>, limit: usize) -> usize {
        poll_fn(|cx| self.poll_recv_many(cx, buf, limit)).await
    }

    /// The poll form of [`recv_many`](Self::recv_many), for hand-written futures: the same result
    /// and cancel-safety.
    pub fn poll_recv_many(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut Vec<BusEvent>,
        limit: usize,
    ) -> Poll<usize> {
        self.poll_recv_through(cx, buf, limit, u64::MAX)
    }

    /// Like [`poll_recv_many`](Self::poll_recv_many), taking no event after position
    /// `through`: `Pending` (with nothing taken) while only later ones are queued.
    pub(crate) fn poll_recv_through(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut Vec<BusEvent>,
        limit: usize,
        through: u64,
    ) -> Poll<usize> {
        if limit == 0 {
            return Poll::Ready(0);
        }
        let before = buf.len();
        if !self.replay.is_empty() {
            // All at or below the boundary, which no held reply's position precedes.
            while buf.len() - before < limit
                && self.replay.front().is_some_and(|e| e.0.seq <= through)
            {
                buf.extend(self.replay.pop_front());
            }
            if self.replay.is_empty() {
                self.replay = VecDeque::new();
            }
            if buf.len() > before {
                return Poll::Ready(buf.len() - before);
            }
        }
        let mut q = lock(&self.slot.queue);
        if loss_through(q.events.lost(), through) {
            buf.extend(q.events.take_notice());
        }
        let window = q.events.window_mut();
        while buf.len() - before < limit && window.front().is_some_and(|e| e.0.seq <= through) {
            buf.extend(window.pop());
        }
        window.release_if_idle(IDLE_QUEUE_SLOTS);
        let taken = buf.len() - before;
        if taken > 0 {
            trace!(id = self.slot.id, events = taken, "events received");
            return Poll::Ready(taken);
        }
        if q.closed && q.events.window().is_empty() {
            return Poll::Ready(0);
        }
        register(&mut q, cx);
        Poll::Pending
    }
}

/// Whether `lost` holds events at or before position `seq` (unknown positions count as such).
fn loss_through(lost: &Loss, seq: u64) -> bool {
    !lost.is_empty() && lost.range.is_none_or(|(first, _)| first <= seq)
}

/// The next event, a `lagged` notice first if events were dropped; after a flood, an emptied
/// queue keeps no more than a few slots.
fn take_one(q: &mut Queue) -> Option<BusEvent> {
    let event = q.events.pop();
    q.events.window_mut().release_if_idle(IDLE_QUEUE_SLOTS);
    event
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
/// wire frame encoded once. Cloning is cheap: no event data is copied.
#[derive(Clone)]
pub struct BusEvent(Arc<Inner>);

struct Inner {
    /// Its position on the bus; 0 for a loss notice.
    seq: u64,
    /// The event type, then the app name if there is one: one allocation for both.
    names: Box<str>,
    /// Where the event type ends in `names`.
    type_len: usize,
    has_app: bool,
    /// What a loss notice made by the bus announces; `None` for a published event.
    loss: Option<Loss>,
    /// The event is kept as its frame (at its exact size); its data is decoded from it when
    /// asked for, so that what the bus holds is what its byte bounds count.
    frame: Box<[u8]>,
    data: OnceLock<Value>,
}

/// `IpcResponse::Event` by reference, with the position, so that encoding needs no copy of the
/// data. Old peers ignore `seq`.
#[derive(Serialize)]
enum WireEvent<'a> {
    Event {
        event_type: &'a str,
        data: &'a Value,
        #[serde(skip_serializing_if = "Option::is_none")]
        seq: Option<u64>,
    },
}

impl BusEvent {
    fn new(
        seq: u64,
        event_type: &str,
        app_name: Option<&str>,
        data: Value,
        scratch: &mut BytesMut,
    ) -> Self {
        Self::build(seq, event_type, app_name, data, None, scratch)
    }

    /// The `lagged` notice for `loss`.
    fn notice(loss: Loss) -> Self {
        trace!(missed = loss.missed, "lagged");
        Self::build(0, LAGGED, None, loss.data(), Some(loss), &mut BytesMut::new())
    }

    fn build(
        seq: u64,
        event_type: &str,
        app_name: Option<&str>,
        data: Value,
        loss: Option<Loss>,
        scratch: &mut BytesMut,
    ) -> Self {
        let names = [event_type, app_name.unwrap_or_default()].concat().into_boxed_str();
        let seq_field = (loss.is_none()).then_some(seq);
        let wire = WireEvent::Event { event_type, data: &data, seq: seq_field };
        let frame = encode(&wire, scratch);
        // A notice is small and made per subscriber: its data stays decoded.
        let kept = if loss.is_some() { OnceLock::from(data) } else { OnceLock::new() };
        BusEvent(Arc::new(Inner {
            seq,
            names,
            type_len: event_type.len(),
            has_app: app_name.is_some(),
            loss,
            frame,
            data: kept,
        }))
    }

    /// What happened, e.g. `"log_line"`; `"lagged"` for a loss notice.
    pub fn event_type(&self) -> &str {
        &self.0.names[..self.0.type_len]
    }

    /// The app the publisher said the event is about.
    pub fn app_name(&self) -> Option<&str> {
        self.0.has_app.then(|| &self.0.names[self.0.type_len..])
    }

    /// The event's details, as published (parsed on the first call; later calls cost nothing).
    pub fn data(&self) -> &Value {
        self.0.data.get_or_init(|| decode_data(&self.0.frame))
    }

    /// Its position on the bus (see [`EventBus`]); `None` for a loss notice.
    pub fn seq(&self) -> Option<u64> {
        self.0.loss.is_none().then_some(self.0.seq)
    }

    /// How many events were dropped, if this is a `lagged` notice.
    pub fn missed(&self) -> Option<u64> {
        self.0.loss.map(|loss| loss.missed)
    }

    /// The positions of the first and last dropped event, if this is a `lagged` notice.
    pub fn lost_range(&self) -> Option<std::ops::RangeInclusive<u64>> {
        let (first, last) = self.0.loss?.range?;
        Some(first..=last)
    }

    pub(crate) fn loss(&self) -> Option<Loss> {
        self.0.loss
    }

    /// What dropping this event loses: what it announced, if it is a notice, or itself.
    pub(crate) fn lost_as(&self) -> Loss {
        self.0.loss.unwrap_or(Loss::one(self.seq()))
    }

    /// An owned copy as the client sees it.
    pub fn to_event(&self) -> Event {
        Event::new(self.event_type().to_owned(), self.data().clone()).with_seq(self.seq())
    }

    /// The complete wire frame of this event: the 4-byte little-endian length, then the JSON
    /// of `IpcResponse::Event { event_type, data }` with its position as a third field, `seq`
    /// (which peers that do not know it ignore). Empty only if the event cannot be encoded at
    /// all (a payload over 4 GiB).
    ///
    /// ```
    /// use bunctl_ipc::{EventBus, SubscriptionType};
    ///
    /// let bus = EventBus::new();
    /// let mut sub = bus.subscribe(SubscriptionType::AllEvents { app_name: None });
    /// bus.publish("ping", None, serde_json::json!(1));
    /// let frame = sub.try_recv().unwrap().encoded_frame().to_vec();
    /// assert_eq!(&frame[4..], br#"{"Event":{"event_type":"ping","data":1,"seq":1}}"#);
    /// assert_eq!(frame[..4], (frame.len() as u32 - 4).to_le_bytes());
    /// ```
    pub fn encoded_frame(&self) -> &[u8] {
        &self.0.frame
    }
}

/// The `data` of an event frame this bus encoded.
fn decode_data(frame: &[u8]) -> Value {
    #[derive(serde::Deserialize)]
    enum Frame {
        Event { data: Value },
    }
    match frame.get(ipc_proto::HEADER_LEN..).map(serde_json::from_slice::<Frame>) {
        Some(Ok(Frame::Event { data })) => data,
        // Only a frame that could not be encoded at all (empty) gets here.
        _ => Value::Null,
    }
}

/// The frame of `wire`, encoded in `scratch` and copied out at its exact size: one allocation
/// that fits.
fn encode(wire: &WireEvent<'_>, scratch: &mut BytesMut) -> Box<[u8]> {
    let mut codec = IpcCodec::<(), WireEvent<'_>>::with_config(
        FrameConfig::new().with_max_message_size(usize::MAX),
    );
    scratch.clear();
    scratch.reserve(FRAME_ROOM);
    let frame = match codec.encode(wire, scratch) {
        Ok(()) => Box::from(&scratch[..]),
        Err(e) => {
            error!(error = %e, "event cannot be encoded");
            Box::default()
        }
    };
    // A scratch buffer that a large event grew is not kept.
    if scratch.capacity() > 64 * 1024 {
        *scratch = BytesMut::new();
    }
    frame
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

/// In a subscription's queue and in the kept events, weighed by the bytes of its frame.
impl Queued for BusEvent {
    fn weight(&self) -> usize {
        self.encoded_frame().len()
    }

    fn lost_as(&self) -> Loss {
        BusEvent::lost_as(self)
    }

    /// No bus ever holds a reset: `publish` delivers and keeps no event under that name, and
    /// `serve` writes its reset notice to the connection itself. (So the windows, which drop on
    /// every publish once full, look at no event type.)
    fn is_reset(&self) -> bool {
        false
    }

    fn notice(loss: Loss) -> Self {
        BusEvent::notice(loss)
    }
}

impl fmt::Debug for BusEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BusEvent")
            .field("seq", &self.seq())
            .field("event_type", &self.event_type())
            .field("app_name", &self.app_name())
            .field("data", self.data())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
    fn encoded_frame_is_the_response_with_its_position() {
        let bus = EventBus::new();
        let mut sub = bus.subscribe(SubscriptionType::AllEvents { app_name: None });
        let data =
            serde_json::json!({"app": "web", "line": "héllo \"quoted\"", "n": [1, 2.5, null]});
        bus.publish(LOG_LINE, Some("web"), data.clone());
        let event = sub.try_recv().expect("queued");
        let frame = event.encoded_frame();
        let json: Value = serde_json::from_slice(&frame[4..]).expect("json");
        assert_eq!(
            json,
            serde_json::json!({"Event": {"event_type": LOG_LINE, "data": data, "seq": 1}})
        );
        // Old peers read it as the brief's response.
        let old: IpcResponse = serde_json::from_slice(&frame[4..]).expect("an IpcResponse");
        assert_eq!(old, IpcResponse::Event { event_type: LOG_LINE.into(), data });
        // Shared, not re-encoded.
        assert_eq!(event.encoded_frame().as_ptr(), event.clone().encoded_frame().as_ptr());
    }

    #[test]
    fn frames_are_those_of_the_golden_vectors() {
        // crates/ipc-proto/testdata/vectors.json, `positioned`.
        let bus = EventBus::new();
        let mut sub = bus.subscribe(SubscriptionType::LogEvents { app_name: Some("web".into()) });
        for _ in 1..42 {
            bus.publish(STATUS_CHANGE, Some("web"), Value::Null);
        }
        let data = serde_json::json!({"app": "web", "line": "listening", "stream": "stdout"});
        bus.publish(LOG_LINE, Some("web"), data);
        let event = sub.try_recv().expect("queued");
        assert_eq!(
            &event.encoded_frame()[4..],
            br#"{"Event":{"event_type":"log_line","data":{"app":"web","line":"listening","stream":"stdout"},"seq":42}}"#
        );
        let notice = BusEvent::notice(Loss { missed: 12, range: Some((1031, 1190)) });
        assert_eq!(
            &notice.encoded_frame()[4..],
            br#"{"Event":{"event_type":"lagged","data":{"first_seq":1031,"last_seq":1190,"missed":12}}}"#
        );
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
        assert!(lock(&sub.slot.queue).events.window().capacity() <= IDLE_QUEUE_SLOTS);
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

    #[test]
    fn instances_differ_and_are_128_bits_of_hex() {
        let (a, b) = (EventBus::new(), EventBus::new());
        assert_ne!(a.instance(), b.instance());
        assert_eq!(a.instance().len(), 32);
        assert!(a.instance().bytes().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(a.clone().instance(), a.instance());
    }
}
