//! Model-based test of the daemon path: random sequences of operations, run by real clients
//! against `serve` over real sockets, on tokio's paused clock, checked against a model after
//! every step.
//!
//! The operations: requests to fast and slow handlers, with short and long client timeouts;
//! requests whose future is dropped mid-way; subscribe and unsubscribe; bursts of events past
//! the bus's queue, some too large for the connection; oversize requests (refused by the
//! client, or by the server, which then closes); disconnects, also mid-frame; reconnects.
//!
//! The invariants:
//! * every completed request got its own reply, and it completed exactly when the model says
//!   its reply was due before its deadline (margins of 2 ms either side of the deadline);
//! * every subscriber saw the events its filter matches, in publish order, and every gap is
//!   announced by `lagged` notices whose counts add up: delivered + missed = published and
//!   matching;
//! * the server's open connections never exceed the clients connected, equal them whenever the
//!   handlers are idle, and at the end slots, tasks and descriptors are back where they started.
//!
//! `BUNCTL_MODEL_CASES` sets the number of cases (default 1000; 100 on Windows, under Wine).

mod common;

use std::collections::VecDeque;
use std::time::Duration;

use bunctl_ipc::event_types::{LOG_LINE, STATUS_CHANGE};
use bunctl_ipc::{
    ClientOptions, ConnectionGauge, EventBus, IpcClient, IpcError, IpcMessage, IpcResponse,
    IpcServer, ServerOptions, SubscriptionType,
};
use common::{Endpoint, fresh_endpoint};
use proptest::prelude::*;
use serde_json::json;
use tokio::time::Instant;

const CLIENTS: usize = 3;
/// The server's frame limit; clients allow twice as much, so a message between the two is
/// refused by the server, one above both by the client itself.
const SERVER_MAX: usize = 2048;
const CLIENT_MAX: usize = 2 * SERVER_MAX;
const BUS_CAPACITY: usize = 8;
const MARGIN: Duration = Duration::from_millis(2);
const LONG: Duration = Duration::from_secs(600);

#[derive(Debug, Clone)]
enum Op {
    Connect(usize),
    /// A request whose handler takes `delay_ms`; the client waits at most `timeout_ms`.
    Request {
        client: usize,
        delay_ms: u64,
        timeout_ms: u64,
    },
    /// A request whose future is dropped after `after_ms` if it has not finished by then.
    DropRequest {
        client: usize,
        delay_ms: u64,
        after_ms: u64,
    },
    Subscribe {
        client: usize,
        filter: u8,
    },
    Unsubscribe(usize),
    /// `count` events of one kind about one app; those whose bit is set in `big` are too large
    /// for any connection.
    Publish {
        log: bool,
        app_a: bool,
        count: usize,
        big: u32,
    },
    Drain(usize),
    /// A message the client itself refuses to send.
    OversizeLocal(usize),
    /// A message the server refuses; it replies with an error and closes.
    OversizeRemote(usize),
    Disconnect(usize),
    DisconnectMidFrame(usize),
    /// Waits until every handler is idle, then checks the open connections exactly.
    Quiesce,
}

fn op() -> impl Strategy<Value = Op> {
    let c = 0..CLIENTS;
    prop_oneof![
        2 => c.clone().prop_map(Op::Connect),
        6 => (c.clone(), prop::sample::select(vec![0u64, 20, 100, 400]),
              prop::sample::select(vec![50u64, 200, 1000]))
            .prop_map(|(client, delay_ms, timeout_ms)| Op::Request { client, delay_ms, timeout_ms }),
        2 => (c.clone(), prop::sample::select(vec![0u64, 100, 400]),
              prop::sample::select(vec![10u64, 150]))
            .prop_map(|(client, delay_ms, after_ms)| Op::DropRequest { client, delay_ms, after_ms }),
        2 => (c.clone(), 0u8..3).prop_map(|(client, filter)| Op::Subscribe { client, filter }),
        1 => c.clone().prop_map(Op::Unsubscribe),
        4 => (any::<bool>(), any::<bool>(), 1usize..=3 * BUS_CAPACITY, any::<u32>())
            .prop_map(|(log, app_a, count, bits)| Op::Publish {
                log, app_a, count,
                // About one event in eight is too large.
                big: bits & (bits >> 8) & (bits >> 16),
            }),
        3 => c.clone().prop_map(Op::Drain),
        1 => c.clone().prop_map(Op::OversizeLocal),
        1 => c.clone().prop_map(Op::OversizeRemote),
        1 => c.clone().prop_map(Op::Disconnect),
        1 => c.clone().prop_map(Op::DisconnectMidFrame),
        1 => Just(Op::Quiesce),
    ]
}

fn filter(n: u8) -> SubscriptionType {
    match n {
        0 => SubscriptionType::AllEvents { app_name: None },
        1 => SubscriptionType::LogEvents { app_name: Some("a".into()) },
        _ => SubscriptionType::StatusEvents { app_name: None },
    }
}

/// What the model knows of one client.
struct Client {
    client: IpcClient,
    /// When the server will have answered everything this connection sent so far.
    server_free_at: Instant,
    /// The subscription, and the sequence numbers of the published events it matches that
    /// the client has not accounted for yet (received or announced missed).
    subscription: Option<SubscriptionType>,
    expected: VecDeque<u64>,
    /// Missed events announced since the last delivered one.
    announced: u64,
}

struct World {
    endpoint: Endpoint,
    bus: EventBus,
    gauge: ConnectionGauge,
    clients: Vec<Option<Client>>,
    /// When the server will have answered what clients that are gone had sent.
    gone_busy_until: Instant,
    /// Clients gone since the last quiescent point: the server may still hold their
    /// connections (it has not read their end of stream yet, or a handler of theirs still runs).
    gone_unsettled: usize,
    next_id: u64,
    next_seq: u64,
}

impl World {
    fn busy_until(&self) -> Instant {
        let live = self.clients.iter().flatten().map(|c| c.server_free_at);
        live.fold(self.gone_busy_until, Instant::max)
    }

    fn remove(&mut self, i: usize) -> Option<Client> {
        let gone = self.clients[i].take()?;
        self.gone_busy_until = self.gone_busy_until.max(gone.server_free_at);
        self.gone_unsettled += 1;
        Some(gone)
    }

    fn connected(&self) -> usize {
        self.clients.iter().flatten().count()
    }

    fn next_request(&mut self, delay_ms: u64) -> IpcMessage {
        self.next_id += 1;
        IpcMessage::Stop { name: format!("{}:{delay_ms}", self.next_id) }
    }
}

/// The handler: sleeps for the delay in the request's name, then echoes the name.
async fn handler(message: IpcMessage) -> IpcResponse {
    match message {
        IpcMessage::Stop { name } => {
            let delay = name.split(':').nth(1).and_then(|d| d.parse().ok()).unwrap_or(0);
            tokio::time::sleep(Duration::from_millis(delay)).await;
            IpcResponse::Success { message: name }
        }
        other => IpcResponse::Error { message: format!("unexpected {other:?}") },
    }
}

/// This process's open descriptors, where the OS lists them (Linux). Not on Windows: under
/// Wine, `/proc/self/fd` would list Wine's own descriptors, which come and go on their own.
fn open_descriptors() -> Option<usize> {
    if !cfg!(target_os = "linux") {
        return None;
    }
    std::fs::read_dir("/proc/self/fd").ok().map(|d| d.count())
}

fn alive_tasks() -> usize {
    tokio::runtime::Handle::current().metrics().num_alive_tasks()
}

/// Waits until `done()` holds, letting the runtime poll its I/O without moving the paused
/// clock, for at most 10 s of real time. On Unix a closed socket is readable at once and the
/// paused clock's idle point is enough; a Windows pipe's end reaches the runtime as an I/O
/// completion from outside the process (from wineserver, under Wine), which may come after the
/// runtime went idle.
async fn eventually(done: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !done() && std::time::Instant::now() < deadline {
        tokio::task::yield_now().await;
        std::thread::yield_now();
    }
}

/// Lets every task run and every timer due by `until` fire.
async fn settle(until: Instant) {
    tokio::time::sleep_until(until.max(Instant::now()) + Duration::from_millis(1)).await;
}

async fn run_case(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let fds_before = open_descriptors();
    let tasks_before = alive_tasks();
    let endpoint = fresh_endpoint();
    let options = ServerOptions::new()
        .max_message_size(SERVER_MAX)
        .timeout(LONG)
        .max_connections(CLIENTS + 2);
    let server = IpcServer::bind_with(endpoint.path(), options).await.expect("bind");
    let gauge = server.connection_gauge();
    let bus = EventBus::with_capacity(BUS_CAPACITY);
    let serving = tokio::spawn(bunctl_ipc::serve(server, bus.clone(), handler));
    let mut world = World {
        endpoint,
        bus,
        gauge,
        clients: (0..CLIENTS).map(|_| None).collect(),
        gone_busy_until: Instant::now(),
        gone_unsettled: 0,
        next_id: 0,
        next_seq: 0,
    };

    for op in ops {
        step(&mut world, op).await?;
        prop_assert!(
            world.gauge.open() <= world.connected() + world.gone_unsettled,
            "{} connections open for {} clients ({} gone, not yet settled)",
            world.gauge.open(),
            world.connected(),
            world.gone_unsettled
        );
    }
    for i in 0..CLIENTS {
        if world.clients[i].as_ref().is_some_and(|c| c.subscription.is_some()) {
            step(&mut world, Op::Drain(i)).await?;
        }
    }
    // Every live client is still paired correctly after everything above.
    for i in 0..CLIENTS {
        if world.clients[i].is_some() {
            step(&mut world, Op::Request { client: i, delay_ms: 0, timeout_ms: 600_000 }).await?;
        }
    }
    step(&mut world, Op::Quiesce).await?;

    for i in 0..CLIENTS {
        world.remove(i);
    }
    settle(world.busy_until()).await;
    eventually(|| world.gauge.open() == 0 && alive_tasks() == tasks_before + 1).await;
    prop_assert_eq!(world.gauge.open(), 0, "connection slots not returned");
    prop_assert_eq!(world.bus.subscriber_count(), 0, "subscriptions not removed");
    // The serve task itself is the one task left of this case.
    prop_assert_eq!(alive_tasks(), tasks_before + 1, "connection tasks left behind");
    serving.abort();
    let _ = serving.await;
    drop(world);
    settle(Instant::now()).await;
    prop_assert_eq!(alive_tasks(), tasks_before);
    if let (Some(before), Some(after)) = (fds_before, open_descriptors()) {
        prop_assert_eq!(after, before, "descriptors leaked");
    }
    Ok(())
}

async fn step(world: &mut World, op: Op) -> Result<(), TestCaseError> {
    match op {
        Op::Connect(i) => {
            if world.clients[i].is_none() {
                let options = ClientOptions::new().max_message_size(CLIENT_MAX).timeout(LONG);
                let client =
                    IpcClient::connect_with(world.endpoint.path(), options).await.expect("connect");
                world.clients[i] = Some(Client {
                    client,
                    server_free_at: Instant::now(),
                    subscription: None,
                    expected: VecDeque::new(),
                    announced: 0,
                });
            }
        }
        Op::Request { client: i, delay_ms, timeout_ms } => {
            let message = world.next_request(delay_ms);
            let Some(c) = world.clients[i].as_mut() else { return Ok(()) };
            let timeout = Duration::from_millis(timeout_ms);
            c.client.set_timeout(timeout);
            let sent = Instant::now();
            let due = c.server_free_at.max(sent) + Duration::from_millis(delay_ms);
            c.server_free_at = due;
            let result = c.client.request(&message).await;
            match &result {
                Ok(reply) => {
                    prop_assert_eq!(reply, &echo_of(&message), "a reply to another request")
                }
                Err(IpcError::Timeout { .. }) => {}
                Err(e) => prop_assert!(false, "request failed: {e}"),
            }
            if due + MARGIN < sent + timeout {
                prop_assert!(result.is_ok(), "due in time, yet {result:?}");
            } else if due > sent + timeout + MARGIN {
                prop_assert!(result.is_err(), "answered after its deadline: {result:?}");
            }
        }
        Op::DropRequest { client: i, delay_ms, after_ms } => {
            let message = world.next_request(delay_ms);
            let Some(c) = world.clients[i].as_mut() else { return Ok(()) };
            c.client.set_timeout(LONG);
            let due = c.server_free_at.max(Instant::now()) + Duration::from_millis(delay_ms);
            c.server_free_at = due;
            tokio::select! {
                reply = c.client.request(&message) => {
                    prop_assert_eq!(reply.expect("no timeout here"), echo_of(&message));
                }
                _ = tokio::time::sleep(Duration::from_millis(after_ms)) => {}
            }
        }
        Op::Subscribe { client: i, filter: f } => {
            if world.clients[i].as_ref().is_some_and(|c| c.subscription.is_some()) {
                // Account for the old subscription first: after the new one's reply, only the
                // new filter applies.
                Box::pin(step(world, Op::Drain(i))).await?;
            }
            let Some(c) = world.clients[i].as_mut() else { return Ok(()) };
            c.client.set_timeout(LONG);
            c.client.subscribe(filter(f)).await.expect("subscribe");
            c.server_free_at = c.server_free_at.max(Instant::now());
            c.subscription = Some(filter(f));
            c.expected.clear();
            c.announced = 0;
        }
        Op::Unsubscribe(i) => {
            if world.clients[i].as_ref().is_some_and(|c| c.subscription.is_some()) {
                Box::pin(step(world, Op::Drain(i))).await?;
            }
            let Some(c) = world.clients[i].as_mut() else { return Ok(()) };
            c.client.set_timeout(LONG);
            c.client.unsubscribe().await.expect("unsubscribe");
            c.server_free_at = c.server_free_at.max(Instant::now());
            c.subscription = None;
        }
        Op::Publish { log, app_a, count, big } => {
            let (kind, app) =
                (if log { LOG_LINE } else { STATUS_CHANGE }, if app_a { "a" } else { "b" });
            for n in 0..count {
                world.next_seq += 1;
                let seq = world.next_seq;
                let pad =
                    if big & (1 << (n % 32)) != 0 { "x".repeat(CLIENT_MAX) } else { String::new() };
                for c in world.clients.iter_mut().flatten() {
                    if c.subscription.as_ref().is_some_and(|f| f.matches(kind, Some(app))) {
                        c.expected.push_back(seq);
                    }
                }
                world.bus.publish(kind, Some(app), json!({ "seq": seq, "pad": pad }));
            }
        }
        Op::Drain(i) => {
            let Some(c) = world.clients[i].as_mut() else { return Ok(()) };
            while !c.expected.is_empty() {
                let event = match tokio::time::timeout(LONG, c.client.next_event()).await {
                    Ok(event) => event.expect("event"),
                    Err(_) => {
                        let left = c.expected.len();
                        return Err(TestCaseError::fail(format!(
                            "{left} events never arrived nor were announced"
                        )));
                    }
                };
                if let Some(missed) = event.missed() {
                    c.announced += missed;
                    prop_assert!(
                        c.announced <= c.expected.len() as u64,
                        "announced {} missed, only {} outstanding",
                        c.announced,
                        c.expected.len()
                    );
                    if c.announced == c.expected.len() as u64 {
                        c.expected.clear();
                        c.announced = 0;
                    }
                    continue;
                }
                let seq = event.data["seq"].as_u64().expect("seq");
                let at = c.expected.iter().position(|s| *s == seq);
                prop_assert!(
                    at.is_some(),
                    "event {seq} does not match, or came twice or out of order"
                );
                let at = at.unwrap_or_default();
                prop_assert_eq!(
                    at as u64,
                    c.announced,
                    "a gap of {} before event {} announced as {}",
                    at,
                    seq,
                    c.announced
                );
                c.expected.drain(..=at);
                c.announced = 0;
            }
        }
        Op::OversizeLocal(i) => {
            let Some(c) = world.clients[i].as_mut() else { return Ok(()) };
            let message = IpcMessage::Start { name: "big".into(), config: "x".repeat(CLIENT_MAX) };
            let owed = c.client.unanswered_requests();
            let e = c.client.request(&message).await.expect_err("over the client's limit");
            prop_assert!(e.is_recoverable(), "refused locally, the connection goes on: {e}");
            prop_assert_eq!(
                c.client.unanswered_requests(),
                owed,
                "nothing was sent, nothing is owed"
            );
        }
        Op::OversizeRemote(i) => {
            if world.clients[i].as_ref().is_some_and(|c| c.subscription.is_some()) {
                Box::pin(step(world, Op::Drain(i))).await?;
            }
            let Some(c) = world.clients[i].as_mut() else { return Ok(()) };
            c.client.set_timeout(LONG);
            let message = IpcMessage::Start { name: "big".into(), config: "x".repeat(SERVER_MAX) };
            match c.client.request(&message).await {
                Ok(IpcResponse::Error { message }) => {
                    prop_assert!(message.contains("exceeds maximum"), "{message}")
                }
                other => prop_assert!(false, "expected the server's refusal, got {other:?}"),
            }
            // The server closes after saying why.
            let next = c.client.recv().await;
            prop_assert!(matches!(next, Err(IpcError::Closed)), "{next:?}");
            world.remove(i);
        }
        Op::Disconnect(i) => drop(world.remove(i)),
        Op::DisconnectMidFrame(i) => {
            if let Some(c) = world.remove(i) {
                use tokio::io::AsyncWriteExt;
                let (mut conn, _) = c.client.into_connection();
                let _ = conn.get_mut().write_all(&[40, 0, 0, 0, b'{']).await;
            }
        }
        Op::Quiesce => {
            settle(world.busy_until()).await;
            eventually(|| world.gauge.open() == world.connected()).await;
            prop_assert_eq!(world.gauge.open(), world.connected(), "open connections vs clients");
            world.gone_unsettled = 0;
        }
    }
    Ok(())
}

fn echo_of(message: &IpcMessage) -> IpcResponse {
    match message {
        IpcMessage::Stop { name } => IpcResponse::Success { message: name.clone() },
        _ => unreachable!("only Stop requests are sent"),
    }
}

fn cases() -> u32 {
    let default = if cfg!(windows) { 100 } else { 1000 };
    std::env::var("BUNCTL_MODEL_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(default)
}

#[test]
fn random_operation_sequences_keep_every_contract_of_the_daemon_path() {
    let config =
        ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() };
    proptest!(config, |(ops in prop::collection::vec(op(), 1..40))| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .expect("runtime");
        runtime.block_on(run_case(ops))?;
    });
}
