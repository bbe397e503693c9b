//! Property test of the event bus alone: random publishes (apps, kinds, sizes), subscriptions
//! with every kind of filter, slow and fast readers, queue bounds in events and in bytes,
//! retention bounds. After every step each subscriber's received events have strictly
//! increasing positions, and the matching positions it did not receive are exactly those its
//! `lagged` notices name; what the bus keeps for replay is, for each app and kind, the most
//! recent events that fit its bounds.

use std::collections::{HashMap, VecDeque};

use bunctl_ipc::event_types::{EventCategory, LOG_LINE, STATUS_CHANGE};
use bunctl_ipc::{BusOptions, EventBus, Subscription, SubscriptionType};
use proptest::prelude::*;
use serde_json::json;

const APPS: [Option<&str>; 3] = [Some("a"), Some("b"), None];
const KINDS: [&str; 3] = [STATUS_CHANGE, LOG_LINE, "custom"];

#[derive(Debug, Clone)]
enum Op {
    Publish {
        app: usize,
        kind: usize,
        pad: usize,
        count: usize,
    },
    Subscribe {
        family: u8,
        app: Option<usize>,
    },
    Unsubscribe(usize),
    /// Subscriber `n` (modulo the live ones) reads up to `frames`.
    Read {
        n: usize,
        frames: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (0..3usize, 0..3usize, prop::sample::select(vec![0usize, 10, 200]), 1..12usize)
            .prop_map(|(app, kind, pad, count)| Op::Publish { app, kind, pad, count }),
        2 => (0u8..3, prop::option::of(0..3usize))
            .prop_map(|(family, app)| Op::Subscribe { family, app }),
        1 => (0..8usize).prop_map(Op::Unsubscribe),
        4 => (0..8usize, 0..10usize).prop_map(|(n, frames)| Op::Read { n, frames }),
    ]
}

fn options() -> impl Strategy<Value = BusOptions> {
    (1..6usize, prop::sample::select(vec![200usize, 1000, 1 << 20]), 0..6usize, 300..3000usize)
        .prop_map(|(events, bytes, kept, kept_bytes)| {
            BusOptions::new()
                .with_queue_capacity(events)
                .with_queue_bytes(bytes)
                .with_retained_events(kept)
                .with_retained_bytes(kept_bytes)
        })
}

fn filter(family: u8, app: Option<usize>) -> SubscriptionType {
    let app_name = app.and_then(|a| APPS[a]).map(str::to_owned);
    match family {
        0 => SubscriptionType::StatusEvents { app_name },
        1 => SubscriptionType::LogEvents { app_name },
        _ => SubscriptionType::AllEvents { app_name },
    }
}

/// One subscriber and the positions it still has to account for.
struct Watcher {
    sub: Subscription,
    expected: VecDeque<u64>,
}

impl Watcher {
    /// Reads up to `frames`, checking each against what the model expects.
    fn read(&mut self, frames: usize) -> Result<(), TestCaseError> {
        for _ in 0..frames {
            let Some(event) = self.sub.try_recv() else {
                prop_assert!(
                    self.expected.is_empty(),
                    "{} events neither queued nor announced",
                    self.expected.len()
                );
                return Ok(());
            };
            match event.missed() {
                Some(missed) => {
                    let missed = missed as usize;
                    prop_assert!(
                        missed > 0 && missed <= self.expected.len(),
                        "{} missed of {}",
                        missed,
                        self.expected.len()
                    );
                    let range = event.lost_range();
                    prop_assert_eq!(range, Some(self.expected[0]..=self.expected[missed - 1]));
                    self.expected.drain(..missed);
                }
                None => {
                    prop_assert_eq!(
                        event.seq(),
                        self.expected.pop_front(),
                        "the next matching event"
                    );
                }
            }
        }
        Ok(())
    }
}

/// An app and a kind of event: what the bus keeps recent events by.
type Key = (Option<&'static str>, EventCategory);

/// What the bus must keep: per app and kind, the most recent events (position, frame size)
/// within the bounds.
#[derive(Default)]
struct KeptModel {
    by_key: HashMap<Key, VecDeque<(u64, usize)>>,
}

impl KeptModel {
    fn push(
        &mut self,
        key: (Option<&'static str>, EventCategory),
        seq: u64,
        len: usize,
        o: &BusOptions,
    ) {
        if o.retained_events() == 0 {
            return;
        }
        let kept = self.by_key.entry(key).or_default();
        let mut bytes: usize = kept.iter().map(|(_, l)| l).sum();
        while !kept.is_empty()
            && (kept.len() >= o.retained_events() || bytes + len > o.retained_bytes())
        {
            if let Some((_, l)) = kept.pop_front() {
                bytes -= l;
            }
        }
        kept.push_back((seq, len));
    }

    fn matching(&self, filter: &SubscriptionType) -> Vec<u64> {
        let mut seqs: Vec<u64> = self
            .by_key
            .iter()
            .filter(|((app, category), _)| {
                let kind = match category {
                    EventCategory::Status => STATUS_CHANGE,
                    EventCategory::Log => LOG_LINE,
                    EventCategory::Other => "custom",
                };
                filter.matches(kind, *app)
            })
            .flat_map(|(_, kept)| kept.iter().map(|(seq, _)| *seq))
            .collect();
        seqs.sort_unstable();
        seqs
    }
}

fn run(options: BusOptions, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let bus = EventBus::with_options(options);
    let mut watchers: Vec<Watcher> = Vec::new();
    let mut kept = KeptModel::default();
    let mut seq = 0;
    for op in ops {
        match op {
            Op::Publish { app, kind, pad, count } => {
                for _ in 0..count {
                    seq += 1;
                    let (app, kind) = (APPS[app], KINDS[kind]);
                    let delivered = bus.publish(kind, app, json!({ "pad": "x".repeat(pad) }));
                    let mut matching = 0;
                    for w in &mut watchers {
                        if w.sub.filter().matches(kind, app) {
                            w.expected.push_back(seq);
                            matching += 1;
                        }
                    }
                    prop_assert_eq!(delivered, matching, "deliveries of event {}", seq);
                    prop_assert_eq!(bus.last_seq(), seq);
                    let history = bus
                        .history(&SubscriptionType::AllEvents { app_name: app.map(str::to_owned) });
                    // (If the bus did not keep it, the history comparison below says so.)
                    let newest = history.last().filter(|e| e.seq() == Some(seq));
                    let len = newest.map_or(0, |e| e.encoded_frame().len());
                    kept.push((app, EventCategory::of(kind)), seq, len, &options);
                }
            }
            Op::Subscribe { family, app } => watchers.push(Watcher {
                sub: bus.subscribe(filter(family, app)),
                expected: VecDeque::new(),
            }),
            Op::Unsubscribe(n) if !watchers.is_empty() => {
                drop(watchers.remove(n % watchers.len()));
            }
            Op::Unsubscribe(_) => {}
            Op::Read { n, frames } if !watchers.is_empty() => {
                let len = watchers.len();
                watchers[n % len].read(frames)?;
            }
            Op::Read { .. } => {}
        }
        prop_assert_eq!(bus.subscriber_count(), watchers.len());
        for w in &watchers {
            prop_assert!(w.sub.len() <= options.queue_capacity(), "queue over its bound");
        }
        for family in 0..3 {
            for app in [None, Some(0), Some(1), Some(2)] {
                let f = filter(family, app);
                let history: Vec<u64> = bus.history(&f).iter().filter_map(|e| e.seq()).collect();
                prop_assert_eq!(history, kept.matching(&f), "history of {:?}", f);
            }
        }
    }
    // Everything left is delivered or announced: delivered + missed = published and matching.
    for w in &mut watchers {
        w.read(usize::MAX)?;
        prop_assert!(w.expected.is_empty());
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn every_subscriber_accounts_for_every_matching_position_and_the_bus_keeps_the_latest(
        options in options(),
        ops in prop::collection::vec(op(), 1..60),
    ) {
        run(options, ops)?;
    }
}
