//! Model-based test of following across connections and daemon restarts: one subscriber
//! follows a daemon (`serve_until` over a bus) with `IpcClient::follow`, reads for a while,
//! disconnects, resumes from its cursor, while events are published in bursts past the bus's
//! queue and retention, and the daemon restarts (a new bus) in between; on tokio's paused
//! clock, over real sockets.
//!
//! The invariants, across all of the subscriber's connections:
//! * on each bus, the events it was handed have strictly increasing positions: none twice,
//!   none out of order, also across reconnects (a resume starts after the cursor);
//! * every event it matched on a bus, from the point it first started following that bus on,
//!   was handed to it or lies inside a `lagged` notice's range, and each notice counts at least
//!   the events of its range it was not handed (never fewer: a cursor among forgotten events
//!   makes the bus over-count, by design); the one exception is the tail of a bus after the
//!   cursor the subscriber had when that daemon went away, which its `reset` notice stands for;
//! * a `reset` comes exactly when it resumes with a cursor of a bus that is gone, before any
//!   event of the new one;
//! * its cursor is always the position of the last event it was handed (notices leave it).
//!
//! The `Follow` operations of `model.rs` check the same replays against the daemon path's
//! timing contracts on one bus; this one checks what no single connection can show.

mod common;

use std::time::Duration;

use bunctl_ipc::event_types::{LAGGED, LOG_LINE, RESET, STATUS_CHANGE};
use bunctl_ipc::{
    BusOptions, Cursor, Event, EventBus, Follow, IpcClient, IpcMessage, IpcResponse, IpcServer,
    SubscriptionType,
};
use common::{Endpoint, fresh_endpoint};
use proptest::prelude::*;
use serde_json::json;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const QUEUE: usize = 8;
const RETAINED: usize = 6;
/// How long a read waits for one more event: on the paused clock, only as long as something
/// is still on its way (the clock moves once every task is idle).
const QUIET: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
enum Op {
    /// `count` events about app `a` or `b`, a log line or a status change.
    Publish { count: usize, app_a: bool, log: bool },
    /// (Re)connects and follows: from the cursor if there is one, else the last `history`
    /// events (or live, `None`).
    Follow { history: Option<usize> },
    /// Reads up to `frames` events, or until none is on its way.
    Read { frames: usize },
    /// Drops the connection; the cursor is kept.
    Disconnect,
    /// Stops the daemon and starts a new one (a new bus) at the same endpoint.
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (1usize..40, any::<bool>(), any::<bool>())
            .prop_map(|(count, app_a, log)| Op::Publish { count, app_a, log }),
        3 => prop::option::of(0usize..12).prop_map(|history| Op::Follow { history }),
        4 => (1usize..30).prop_map(|frames| Op::Read { frames }),
        1 => Just(Op::Disconnect),
        1 => Just(Op::Restart),
    ]
}

async fn handler(message: IpcMessage) -> IpcResponse {
    IpcResponse::Success { message: format!("{message:?}") }
}

/// One daemon's life: its bus, what was published on it, and what the subscriber saw of it.
struct Life {
    bus: EventBus,
    /// Positions of the published events the subscription matches.
    matching: Vec<u64>,
    /// Owed to the subscriber from this position on, once it has started following this bus.
    owed_from: Option<u64>,
    /// Owed up to this position only: the cursor it had when this daemon went away.
    owed_until: Option<u64>,
    delivered: Vec<u64>,
    /// Notices: (missed, first, last).
    notices: Vec<(u64, u64, u64)>,
}

struct World {
    endpoint: Endpoint,
    filter: SubscriptionType,
    lives: Vec<Life>,
    stop: Option<oneshot::Sender<()>>,
    serving: Option<JoinHandle<bunctl_ipc::Result<()>>>,
    client: Option<IpcClient>,
    /// The life the client's connection is to.
    connected_to: usize,
    cursor: Option<Cursor>,
    /// The life the cursor is of.
    cursor_life: usize,
    /// A `reset` must come next (the client resumed with a cursor of a gone bus).
    reset_due: bool,
}

impl World {
    fn life(&mut self) -> &mut Life {
        self.lives.last_mut().expect("a daemon")
    }

    async fn start_daemon(&mut self) {
        let bus = EventBus::with_options(
            BusOptions::new().with_queue_capacity(QUEUE).with_retained_events(RETAINED),
        );
        let server = IpcServer::bind(self.endpoint.path()).await.expect("bind");
        let (stop, stopped) = oneshot::channel::<()>();
        let shutdown = async move {
            let _ = stopped.await;
        };
        let serving = bunctl_ipc::serve_until(server, bus.clone(), handler, shutdown, QUIET);
        self.serving = Some(tokio::spawn(serving));
        self.stop = Some(stop);
        self.lives.push(Life {
            bus,
            matching: Vec::new(),
            owed_from: None,
            owed_until: None,
            delivered: Vec::new(),
            notices: Vec::new(),
        });
    }

    async fn stop_daemon(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(serving) = self.serving.take() {
            serving.await.expect("serve_until").expect("served");
        }
        // What the subscriber had of this bus when it went is what is owed of it.
        let until = (self.cursor_life == self.lives.len() - 1).then(|| self.cursor_seq());
        self.life().owed_until = Some(until.flatten().unwrap_or(0));
    }

    fn cursor_seq(&self) -> Option<u64> {
        self.cursor.as_ref().map(|c| c.seq)
    }

    fn disconnect(&mut self) {
        self.client = None;
    }

    fn publish(&mut self, count: usize, app_a: bool, log: bool) {
        let (app, kind) =
            (if app_a { "a" } else { "b" }, if log { LOG_LINE } else { STATUS_CHANGE });
        let filter = self.filter.clone();
        let life = self.life();
        for _ in 0..count {
            let seq = life.bus.last_seq() + 1;
            life.bus.publish(kind, Some(app), json!({ "app": app, "n": seq }));
            if filter.matches(kind, Some(app)) {
                life.matching.push(seq);
            }
        }
    }

    async fn follow(&mut self, history: Option<usize>) -> Result<(), TestCaseError> {
        self.disconnect();
        let mut client = IpcClient::connect(self.endpoint.path()).await.expect("connect");
        let now = self.lives.len() - 1;
        let boundary = self.lives[now].bus.last_seq();
        let request = match (&self.cursor, history) {
            (Some(cursor), _) => Follow::after(self.filter.clone(), cursor),
            (None, Some(events)) => Follow::history(self.filter.clone(), events),
            (None, None) => Follow::live(self.filter.clone()),
        };
        let resumes = self.cursor.is_some();
        self.reset_due = resumes && self.cursor_life != now;
        client.follow(request).await.map_err(|e| TestCaseError::fail(format!("follow: {e}")))?;
        let life = &mut self.lives[now];
        if life.owed_from.is_none() {
            // Everything of a bus resumed from another's cursor; after the boundary when
            // starting afresh (a history is shown as a courtesy: not owed).
            life.owed_from = Some(if resumes { 1 } else { boundary + 1 });
        }
        let instance = life.bus.instance().to_owned();
        let want = match &self.cursor {
            Some(cursor) => cursor.clone(),
            None => Cursor { instance, seq: boundary },
        };
        prop_assert_eq!(client.cursor(), Some(&want), "the cursor resumed from, or the boundary");
        if !resumes {
            self.cursor = Some(want);
            self.cursor_life = now;
        }
        self.client = Some(client);
        self.connected_to = now;
        Ok(())
    }

    async fn read(&mut self, frames: usize) -> Result<(), TestCaseError> {
        for _ in 0..frames {
            let Some(client) = self.client.as_mut() else { return Ok(()) };
            let event = match tokio::time::timeout(QUIET, client.next_event()).await {
                Err(_) => return Ok(()),
                Ok(Err(e)) if e.is_disconnect() => {
                    self.disconnect();
                    return Ok(());
                }
                Ok(Err(e)) => return Err(TestCaseError::fail(format!("next_event: {e}"))),
                Ok(Ok(event)) => event,
            };
            let cursor = client.cursor().cloned();
            self.account(&event, cursor)?;
        }
        Ok(())
    }

    fn account(&mut self, event: &Event, cursor: Option<Cursor>) -> Result<(), TestCaseError> {
        let at = self.connected_to;
        if event.event_type == RESET {
            prop_assert!(self.reset_due, "a reset nobody was owed");
            prop_assert_eq!(event.data["instance"].as_str(), Some(self.lives[at].bus.instance()));
            self.reset_due = false;
            self.cursor_life = at;
            prop_assert_eq!(
                cursor.as_ref().map(|c| c.seq),
                Some(0),
                "a reset starts the cursor over"
            );
            self.cursor = cursor;
            return Ok(());
        }
        prop_assert!(!self.reset_due, "the reset comes first, not {:?}", event);
        let life = &mut self.lives[at];
        let cursor_before = self.cursor.as_ref().map(|c| c.seq);
        let reached = if event.event_type == LAGGED {
            let range = event.lost_range().expect("the bus's notices have a range");
            let missed = event.missed().expect("missed");
            life.notices.push((missed, *range.start(), *range.end()));
            // A notice leaves the cursor where it was.
            prop_assert_eq!(
                cursor.as_ref().map(|c| c.seq),
                cursor_before,
                "a notice moved the cursor"
            );
            cursor_before.unwrap_or(0)
        } else {
            let seq = event.seq().expect("a position");
            prop_assert!(life.matching.contains(&seq), "event {} does not match", seq);
            if let Some(last) = life.delivered.last() {
                prop_assert!(seq > *last, "event {} after {}: twice, or out of order", seq, last);
            }
            life.delivered.push(seq);
            seq
        };
        let cursor_now = cursor.as_ref().map(|c| c.seq);
        prop_assert!(
            cursor_now.is_some_and(|c| c >= reached),
            "cursor {cursor_now:?} vs {reached}"
        );
        prop_assert_eq!(cursor.as_ref().map(|c| c.instance.as_str()), Some(life.bus.instance()));
        self.cursor = cursor;
        self.cursor_life = at;
        Ok(())
    }

    fn check_coverage(&self) -> Result<(), TestCaseError> {
        for (n, life) in self.lives.iter().enumerate() {
            let Some(from) = life.owed_from else { continue };
            let until = life.owed_until.unwrap_or(u64::MAX);
            for seq in life.matching.iter().filter(|s| (from..=until).contains(*s)) {
                let named = life.notices.iter().any(|(_, a, b)| (a..=b).contains(&seq));
                prop_assert!(
                    life.delivered.contains(seq) || named,
                    "life {}: event {} neither handed over nor named in a notice",
                    n,
                    seq
                );
            }
            // Each notice counts at least the owed events that it alone names. (Exact counts,
            // connection by connection, are `model.rs`'s.)
            for (k, (missed, a, b)) in life.notices.iter().enumerate() {
                let elsewhere = |s: &u64| {
                    life.notices
                        .iter()
                        .enumerate()
                        .any(|(j, (_, c, d))| j != k && (c..=d).contains(&s))
                };
                let alone = life
                    .matching
                    .iter()
                    .filter(|s| (from..=until).contains(*s) && (a..=b).contains(s))
                    .filter(|s| !life.delivered.contains(s) && !elsewhere(s))
                    .count() as u64;
                prop_assert!(
                    *missed >= alone,
                    "a notice of {} for {} it alone names",
                    missed,
                    alone
                );
            }
        }
        Ok(())
    }
}

async fn run_case(filter: u8, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let mut world = World {
        endpoint: fresh_endpoint(),
        filter: common::filter(filter),
        lives: Vec::new(),
        stop: None,
        serving: None,
        client: None,
        connected_to: 0,
        cursor: None,
        cursor_life: 0,
        reset_due: false,
    };
    world.start_daemon().await;
    for op in ops {
        match op {
            Op::Publish { count, app_a, log } => world.publish(count, app_a, log),
            Op::Follow { history } => world.follow(history).await?,
            Op::Read { frames } => world.read(frames).await?,
            Op::Disconnect => world.disconnect(),
            Op::Restart => {
                // What reached the client before the daemon went is read first: the model
                // cannot tell what the client had from what the socket still held.
                world.read(usize::MAX).await?;
                world.stop_daemon().await;
                world.disconnect();
                world.start_daemon().await;
            }
        }
    }
    // Finally: resume and read everything.
    world.follow(None).await?;
    world.read(usize::MAX).await?;
    prop_assert!(!world.reset_due, "the reset never came");
    world.check_coverage()?;
    world.disconnect();
    world.stop_daemon().await;
    Ok(())
}

#[test]
fn following_across_reconnects_and_restarts_hands_over_every_event_once_or_names_it() {
    let cases = std::env::var("BUNCTL_MODEL_CASES").ok().and_then(|n| n.parse().ok());
    let config = ProptestConfig {
        cases: cases.unwrap_or(if cfg!(windows) { 50 } else { 300 }),
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    proptest!(config, |(filter in 0u8..3, ops in prop::collection::vec(op(), 1..30))| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .expect("runtime")
            .block_on(run_case(filter, ops))?;
    });
}
