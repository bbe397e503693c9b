//! Model-based test of the daemon path: random sequences of operations, run by real clients
//! against a server over real sockets, on tokio's paused clock, checked against a model after
//! every step. The server's send timeout is in the range of the clients' own, so its deadlines
//! fire in the test as they do in use. (Its idle limit is left long: a separate option, tested
//! in `hostile.rs`.)
//!
//! Each case serves either through `serve_until` (checking how soon it returns after shutdown)
//! or through an accept loop that runs `serve_connection_until` per connection and records how
//! and when each connection ended (checking every timeout the server declares).
//!
//! The operations: requests to fast and slow handlers, with short and long client timeouts;
//! requests whose future is dropped mid-way; subscribe and unsubscribe, with or without reading
//! what the old subscription had first; bursts of events past the bus's queue, some too large
//! for the connection, some large enough to fill the output; slow but steady readers of a
//! flood; requests sent by a flooded subscriber, whose held-event queue overflows with
//! `lagged` notices in it; pipelined bursts past the rounds of one poll and past the output's
//! high-water mark, read at a steady pace, of requests small or large enough for the server to
//! keep its read buffer between them (large replies do the same on the client's side);
//! oversize requests (refused by the client, or by the server, which then closes) and oversize
//! replies (replaced by an error); disconnects, also
//! mid-frame; request frames that stall half-way while events flow, then complete or never
//! do; requests whose reply waits behind a full output while events are published on both
//! sides of the handler's return; half-closes, read to the end or never read again;
//! reconnects; `Follow` live, with history, from the cursor a client slot's last connection
//! had, from a cursor at a random position (before, among and after the events the bus has
//! forgotten), and from another bus's cursor (a restarted daemon's); shutdown in the middle of
//! any of these. The bus's queues are bounded in events and in bytes, both in range of what the
//! operations publish, and it keeps few events of each app and kind, so that replays cross
//! what it forgot. (Following across daemon restarts, over several connections of one
//! subscriber, is `follow_model.rs`.)
//!
//! The invariants:
//! * every completed request got its own reply, and it completed exactly when the model says
//!   its reply was due before its deadline (margins of 2 ms either side of the deadline); every
//!   request sent before a connection's input ended was answered before it closed;
//! * a reply held behind events came after every event published before its handler
//!   returned and before every one published after;
//! * every subscriber saw the events its filter matches, in publish order, and every gap is
//!   announced by `lagged` notices (the server's or the client's own) whose counts add up:
//!   delivered + missed = published and matching, also across resubscribes, half-closes and
//!   shutdown; a follower's replay is exactly what the bus keeps after its cursor (or its last
//!   N), preceded by one notice that counts what it forgot (all of an app and kind's forgotten
//!   events when the cursor falls among them), and by a `reset` for another bus's cursor; its
//!   cursor is the position of the last event handed to it;
//! * a connection the server ended with `Timeout { Send }` had a reply (or output left when
//!   its input ended) that really waited that long: ready at least the timeout before the end,
//!   and not read by the client before it; one ended with `Timeout { Receive }` had a request
//!   frame stalled that long, and was ended within 2 ms of its frame's deadline (events
//!   written meanwhile do not move it);
//! * after shutdown, the server is done within the send timeout of the later of the shutdown
//!   and the last handler's reply, however long the grace period;
//! * the server's open connections never exceed the clients connected, equal them whenever the
//!   handlers are idle, and at the end slots, tasks and descriptors are back where they started.
//!
//! `BUNCTL_MODEL_CASES` sets the number of cases (default 1000; 100 on Windows, under Wine).

mod common;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bunctl_ipc::event_types::{LOG_LINE, RESET, STATUS_CHANGE};
use bunctl_ipc::{
    BusOptions, ClientConnection, ClientOptions, ConnectionGauge, Cursor, Event, EventBus, Follow,
    IpcClient, IpcError, IpcMessage, IpcResponse, IpcServer, Operation, ServerOptions,
    SubscriptionType,
};
use common::{Endpoint, filter, fresh_endpoint};
use proptest::prelude::*;
use serde_json::json;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

const CLIENTS: usize = 3;
/// The server's frame limit; clients allow twice as much, so a message between the two is
/// refused by the server, one above both by the client itself.
const SERVER_MAX: usize = 2048;
const CLIENT_MAX: usize = 2 * SERVER_MAX;
const BUS_CAPACITY: usize = 8;
/// The bus's queue bound in bytes: a few padded events, so that floods of them are bounded by
/// bytes and floods of small ones by count.
const BUS_BYTES: usize = 6 * 1024;
/// The events the bus keeps of each app and kind for `Follow`: few, so that cursors fall
/// before, among and after forgotten ones.
const RETAINED: usize = 6;
/// What a client holds back while it waits for a reply: small, so that floods overflow it.
const HELD_EVENTS: usize = 16;
const MARGIN: Duration = Duration::from_millis(2);
const LONG: Duration = Duration::from_secs(600);
/// Padding that makes an event or a reply large (but within the server's limit).
const PAD: usize = 1500;
/// The send buffer of the server's sockets (`Serving::Each`, Unix).
#[cfg(unix)]
const SEND_BUFFER: usize = 4096;

/// How a case serves.
#[derive(Debug, Clone, Copy)]
enum Serving {
    /// An accept loop running `serve_connection_until` per connection, recording outcomes.
    Each,
    /// `serve_until` with this grace period.
    Until { grace_ms: u64 },
}

#[derive(Debug, Clone, Copy)]
struct Setup {
    serving: Serving,
    /// The server's send timeout.
    timeout_ms: u64,
}

#[derive(Debug, Clone)]
enum Op {
    Connect(usize),
    /// A request whose handler takes `delay_ms`; the client waits at most `timeout_ms`. With
    /// `oversize`, the handler's reply is over the server's frame limit, and the server
    /// answers with an error instead.
    Request {
        client: usize,
        delay_ms: u64,
        timeout_ms: u64,
        oversize: bool,
    },
    /// A request whose future is dropped after `after_ms` if it has not finished by then.
    DropRequest {
        client: usize,
        delay_ms: u64,
        after_ms: u64,
    },
    /// Subscribes (replacing any subscription); with `drain_first`, after reading everything
    /// the old one had.
    Subscribe {
        client: usize,
        filter: u8,
        drain_first: bool,
    },
    Unsubscribe {
        client: usize,
        drain_first: bool,
    },
    /// `count` events of one kind about one app; those whose bit is set in `big` are too large
    /// for any connection, and with `padded` the others are large too.
    Publish {
        log: bool,
        app_a: bool,
        count: usize,
        big: u32,
        padded: bool,
    },
    Drain(usize),
    /// For `ticks` ticks of `tick_ms`, `per_tick` events are published and the client reads at
    /// most `reads` frames a tick.
    SteadyRead {
        client: usize,
        ticks: u32,
        per_tick: usize,
        reads: usize,
        tick_ms: u64,
        pad: usize,
    },
    /// A request (handler `delay_ms`) while `flood` events arrive in chunks.
    FloodedRequest {
        client: usize,
        delay_ms: u64,
        flood: usize,
    },
    /// `count` pipelined requests of `request_pad` bytes more than a bare request (large
    /// enough for the server's connection to keep its read buffer between them) with replies
    /// of `pad` bytes, read `per_tick` frames every `tick_ms`; the client then leaves.
    Burst {
        client: usize,
        count: usize,
        pad: usize,
        request_pad: usize,
        per_tick: usize,
        tick_ms: u64,
    },
    /// A message the client itself refuses to send.
    OversizeLocal(usize),
    /// A message the server refuses; it replies with an error and closes.
    OversizeRemote(usize),
    Disconnect(usize),
    DisconnectMidFrame(usize),
    /// After `flood` events (large with `pad`), the client closes its write side, then reads
    /// to the end (or never reads again).
    HalfClose {
        client: usize,
        read: bool,
        pad: usize,
        flood: usize,
    },
    /// A complete request, then a frame cut short by the end of the client's output; the
    /// client reads to the end and must get the request's reply.
    TruncatedAfterRequest {
        client: usize,
        delay_ms: u64,
    },
    /// Half of a request frame, then a stall while `flood` events are published: with
    /// `finish`, the rest comes within half the server's timeout and is answered; without, the
    /// server ends the connection once the frame has taken its timeout.
    StalledFrame {
        client: usize,
        subscribe: bool,
        finish: bool,
        flood: usize,
    },
    /// A subscriber (of every event) that is not reading sends a request whose handler takes
    /// 30 ms while `before` events (padded with `pad`) are published, then `after` more once the
    /// handler has returned; it then reads everything. Its reply must come after every event
    /// published before the handler returned and before every one published after.
    GatedRequest {
        client: usize,
        before: usize,
        after: usize,
        pad: usize,
    },
    /// Unsubscribes (reading the old subscription's notice), then follows `filter` from
    /// `from`: 0 live, 1 the last `n` kept events, 2 the cursor this client slot had when its
    /// last connection went (or 3 if none), 3 a cursor at about `n`/19 of the events published
    /// so far, 4 a cursor of another bus (a restarted daemon: `reset`, then all that is kept).
    Follow {
        client: usize,
        filter: u8,
        from: u8,
        n: usize,
    },
    /// Waits until every handler is idle, then checks the open connections exactly.
    Quiesce,
    /// Shuts the server down; nothing runs after it.
    Shutdown,
}

fn setup() -> impl Strategy<Value = Setup> {
    let serving = prop_oneof![
        2 => Just(Serving::Each),
        1 => prop::sample::select(vec![1000u64, 600_000]).prop_map(|grace_ms| Serving::Until { grace_ms }),
    ];
    (serving, prop::sample::select(vec![150u64, 400, 1000]))
        .prop_map(|(serving, timeout_ms)| Setup { serving, timeout_ms })
}

/// The operations for `setup`. Under `serve_until`, whose connections' outcomes are not seen,
/// no operation fills a connection's output enough for the server to time it out legitimately.
fn op(setup: Setup) -> impl Strategy<Value = Op> {
    let c = 0..CLIENTS;
    let each = matches!(setup.serving, Serving::Each);
    let pads = if each { vec![0usize, 0, PAD] } else { vec![0] };
    let burst_counts = if each { vec![129usize, 300, 2000, 6000] } else { vec![50usize, 129, 300] };
    prop_oneof![
        3 => c.clone().prop_map(Op::Connect),
        6 => (c.clone(), prop::sample::select(vec![0u64, 20, 100, 400]),
              prop::sample::select(vec![50u64, 200, 1000]), prop::bool::weighted(0.1))
            .prop_map(|(client, delay_ms, timeout_ms, oversize)| {
                Op::Request { client, delay_ms, timeout_ms, oversize }
            }),
        2 => (c.clone(), prop::sample::select(vec![0u64, 100, 400]),
              prop::sample::select(vec![10u64, 150]))
            .prop_map(|(client, delay_ms, after_ms)| Op::DropRequest { client, delay_ms, after_ms }),
        3 => (c.clone(), 0u8..3, any::<bool>())
            .prop_map(|(client, filter, drain_first)| Op::Subscribe { client, filter, drain_first }),
        1 => (c.clone(), any::<bool>())
            .prop_map(|(client, drain_first)| Op::Unsubscribe { client, drain_first }),
        4 => (any::<bool>(), any::<bool>(), 1usize..=3 * BUS_CAPACITY, any::<u32>(), any::<bool>())
            .prop_map(move |(log, app_a, count, bits, padded)| Op::Publish {
                log, app_a, count,
                // About one event in eight is too large.
                big: bits & (bits >> 8) & (bits >> 16),
                padded: padded && each,
            }),
        3 => c.clone().prop_map(Op::Drain),
        2 => (c.clone(), 1u32..40, 1usize..20, 0usize..4, prop::sample::select(vec![5u64, 50]),
              prop::sample::select(pads.clone()))
            .prop_map(|(client, ticks, per_tick, reads, tick_ms, pad)| {
                Op::SteadyRead { client, ticks, per_tick, reads, tick_ms, pad }
            }),
        1 => (c.clone(), prop::sample::select(vec![0u64, 20]), 10usize..100)
            .prop_map(|(client, delay_ms, flood)| Op::FloodedRequest { client, delay_ms, flood }),
        3 => (c.clone(), prop::sample::select(burst_counts), prop::sample::select(pads.clone()),
              prop::sample::select(vec![0usize, 0, 600]),
              prop::sample::select(vec![1usize, 16, 64, 1000]), prop::sample::select(vec![1u64, 10]))
            .prop_map(|(client, count, pad, request_pad, per_tick, tick_ms)| {
                // Padded requests echo their padding: with padded replies, over the limit.
                let request_pad = if pad > 0 { 0 } else { request_pad };
                Op::Burst { client, count, pad, request_pad, per_tick, tick_ms }
            }),
        1 => c.clone().prop_map(Op::OversizeLocal),
        1 => c.clone().prop_map(Op::OversizeRemote),
        1 => c.clone().prop_map(Op::Disconnect),
        1 => c.clone().prop_map(Op::DisconnectMidFrame),
        3 => (c.clone(), any::<bool>(), prop::sample::select(pads.clone()), 0usize..12)
            .prop_map(|(client, read, pad, flood)| Op::HalfClose { client, read, pad, flood }),
        1 => (c.clone(), prop::sample::select(vec![0u64, 20]))
            .prop_map(|(client, delay_ms)| Op::TruncatedAfterRequest { client, delay_ms }),
        2 => (c.clone(), any::<bool>(), any::<bool>(), 0usize..20)
            .prop_map(|(client, subscribe, finish, flood)| {
                Op::StalledFrame { client, subscribe, finish, flood }
            }),
        // Padded, 100 or more fill the output (`Serving::Each`), so that the reply waits.
        2 => (c.clone(), prop::sample::select(vec![0usize, 40, 100, 159]), 1usize..12)
            .prop_map(move |(client, before, after)| {
                Op::GatedRequest { client, before, after, pad: if each { PAD } else { 0 } }
            }),
        3 => (c.clone(), 0u8..3, 0u8..5, 0usize..20)
            .prop_map(|(client, filter, from, n)| Op::Follow { client, filter, from, n }),
        1 => Just(Op::Quiesce),
        1 => Just(Op::Shutdown),
    ]
}

/// What the model knows of one client.
struct Client {
    client: IpcClient,
    /// Which of the server's connections is this client's (they are accepted in order).
    conn: usize,
    /// When the server will have answered everything this connection sent so far.
    server_free_at: Instant,
    watch: Watch,
}

/// A client's subscription, and the sequence numbers of the published events it matches that
/// the client has not accounted for yet (received or announced missed).
#[derive(Default)]
struct Watch {
    subscription: Option<SubscriptionType>,
    expected: VecDeque<u64>,
    /// Missed events announced since the last delivered one.
    announced: u64,
    /// A `reset` notice is due before the events (a `Follow` with another bus's cursor).
    reset_due: bool,
    /// Where the client's cursor must be once everything expected is accounted for, and
    /// whether an event has placed it (a history's starts at the boundary, above its events):
    /// `None` for a subscription that is not a `Follow`.
    cursor: Option<(u64, bool)>,
}

/// What one of the server's connections was asked, and when its client read the answers.
#[derive(Default)]
struct Record {
    replies: Vec<Owed>,
    /// When the client ended its input (half-close), if it did.
    input_ended_at: Option<Instant>,
    /// When the server started reading a frame that then stalled, if one did.
    frame_started_at: Option<Instant>,
}

/// A reply the connection owes: to the request `id` (ready when its handler returned), or one
/// the server makes itself (ready once the request was read: not before it was sent).
struct Owed {
    id: Option<u64>,
    sent: Instant,
    read: Option<Instant>,
}

/// How and when each accepted connection ended (`Serving::Each`), in accept order.
type Outcomes = Arc<Mutex<Vec<Option<(bunctl_ipc::Result<()>, Instant)>>>>;

struct World {
    setup: Setup,
    timeout: Duration,
    endpoint: Endpoint,
    bus: EventBus,
    gauge: ConnectionGauge,
    clients: Vec<Option<Client>>,
    /// Half-closed clients that never read again; the server must end them by itself.
    zombies: Vec<ClientConnection>,
    records: Vec<Record>,
    outcomes: Outcomes,
    checked_outcomes: usize,
    /// When each request's handler returned, by request id.
    ready: Arc<Mutex<HashMap<u64, Instant>>>,
    shutdown: watch::Sender<bool>,
    serving: JoinHandle<bunctl_ipc::Result<()>>,
    shut_down: bool,
    /// When the server was told to shut down: every connection's input ended then.
    shutdown_at: Option<Instant>,
    /// When the server will have answered what clients that are gone had sent.
    gone_busy_until: Instant,
    /// Clients gone since the last quiescent point: the server may still hold their
    /// connections (it has not read their end of stream yet, or a handler of theirs still runs).
    gone_unsettled: usize,
    next_id: u64,
    next_seq: u64,
    /// Every event published, by app and kind (the bus's retention windows).
    published: HashMap<(&'static str, &'static str), Vec<u64>>,
    /// The cursor each client slot had when its last connection went (for `Follow` to resume).
    cursors: Vec<Option<Cursor>>,
}

impl World {
    fn busy_until(&self) -> Instant {
        let live = self.clients.iter().flatten().map(|c| c.server_free_at);
        live.fold(self.gone_busy_until, Instant::max)
    }

    fn remove(&mut self, i: usize) -> Option<Client> {
        let gone = self.clients[i].take()?;
        if let Some(cursor) = gone.client.cursor() {
            self.cursors[i] = Some(cursor.clone());
        }
        self.gone_busy_until = self.gone_busy_until.max(gone.server_free_at);
        self.gone_unsettled += 1;
        Some(gone)
    }

    fn connected(&self) -> usize {
        self.clients.iter().flatten().count()
    }

    fn next_request(&mut self, delay_ms: u64, pad: usize) -> (u64, IpcMessage) {
        self.next_padded_request(delay_ms, pad, 0)
    }

    /// A request whose name carries `request_pad` bytes after its numbers (echoed back).
    fn next_padded_request(
        &mut self,
        delay_ms: u64,
        pad: usize,
        request_pad: usize,
    ) -> (u64, IpcMessage) {
        self.next_id += 1;
        let mut name = format!("{}:{delay_ms}:{pad}", self.next_id);
        if request_pad > 0 {
            name = format!("{name}:{}", "x".repeat(request_pad));
        }
        (self.next_id, IpcMessage::Stop { name })
    }

    /// Notes that `client` sent a request answered by the handler (`id`) or by the server.
    fn owe(&mut self, conn: usize, id: Option<u64>) -> usize {
        let replies = &mut self.records[conn].replies;
        replies.push(Owed { id, sent: Instant::now(), read: None });
        replies.len() - 1
    }

    fn answered(&mut self, conn: usize, reply: usize) {
        self.records[conn].replies[reply].read = Some(Instant::now());
    }

    /// Publishes one event and notes which clients expect it.
    fn publish(&mut self, kind: &'static str, app: &'static str, pad: usize) {
        let seq = self.note_published(kind, app);
        self.bus.publish(kind, Some(app), json!({ "seq": seq, "pad": "x".repeat(pad) }));
    }

    /// Notes the next event as published (the bus numbers them the same way) and which
    /// clients expect it; returns its position.
    fn note_published(&mut self, kind: &'static str, app: &'static str) -> u64 {
        self.next_seq += 1;
        let seq = self.next_seq;
        self.published.entry((app, kind)).or_default().push(seq);
        for c in self.clients.iter_mut().flatten() {
            c.watch.expect(seq, kind, app);
        }
        seq
    }
}

/// The handler: sleeps for the delay in the request's name, notes when it returned, then
/// echoes the name with the padding it asks for.
fn handler(
    ready: Arc<Mutex<HashMap<u64, Instant>>>,
) -> impl Fn(IpcMessage) -> std::pin::Pin<Box<dyn Future<Output = IpcResponse> + Send>>
+ Send
+ Sync
+ 'static {
    move |message| {
        let ready = Arc::clone(&ready);
        Box::pin(async move {
            let IpcMessage::Stop { name } = message else {
                return IpcResponse::Error { message: format!("unexpected {message:?}") };
            };
            let mut parts = name.split(':').map(|p| p.parse::<u64>().unwrap_or(0));
            let (id, delay, pad) = (parts.next(), parts.next(), parts.next());
            tokio::time::sleep(Duration::from_millis(delay.unwrap_or(0))).await;
            if let Some(id) = id {
                ready.lock().expect("lock").insert(id, Instant::now());
            }
            IpcResponse::Success { message: echo(&name, pad.unwrap_or(0)) }
        })
    }
}

fn echo(name: &str, pad: u64) -> String {
    format!("{name}{}", "x".repeat(pad as usize))
}

fn echo_of(message: &IpcMessage) -> IpcResponse {
    match message {
        IpcMessage::Stop { name } => {
            // The third number, as the handler reads it.
            let pad = name.split(':').nth(2).and_then(|p| p.parse().ok()).unwrap_or(0);
            IpcResponse::Success { message: echo(name, pad) }
        }
        _ => unreachable!("only Stop requests are sent"),
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

/// Serves every connection with `serve_connection_until`, noting how and when each ended,
/// until `shutdown`; returns once every connection has ended.
async fn serve_each(
    mut server: IpcServer,
    bus: EventBus,
    ready: Arc<Mutex<HashMap<u64, Instant>>>,
    outcomes: Outcomes,
    mut shutdown: watch::Receiver<bool>,
) -> bunctl_ipc::Result<()> {
    let handler = Arc::new(handler(ready));
    let mut tasks = JoinSet::new();
    loop {
        let conn = tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => break,
            conn = server.accept() => conn?,
        };
        // What the server has written and what its client has read then differ by a few
        // kilobytes at most, so that a reply the client has not read is one the server has not
        // written (nearly): what `check_outcomes` relies on. (A Unix stream's bytes in flight
        // count against the sender's buffer.)
        #[cfg(unix)]
        socket2::SockRef::from(conn.get_ref()).set_send_buffer_size(SEND_BUFFER).expect("sndbuf");
        let n = {
            let mut outcomes = outcomes.lock().expect("lock");
            outcomes.push(None);
            outcomes.len() - 1
        };
        let (bus, handler, outcomes) = (bus.clone(), Arc::clone(&handler), Arc::clone(&outcomes));
        let mut stop = shutdown.clone();
        tasks.spawn(async move {
            let stopped = async move {
                let _ = stop.wait_for(|stop| *stop).await;
            };
            let outcome = bunctl_ipc::serve_connection_until(conn, &bus, &*handler, stopped).await;
            outcomes.lock().expect("lock")[n] = Some((outcome, Instant::now()));
        });
    }
    drop(server);
    while tasks.join_next().await.is_some() {}
    Ok(())
}

async fn run_case(setup: Setup, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let fds_before = open_descriptors();
    let tasks_before = alive_tasks();
    let endpoint = fresh_endpoint();
    let timeout = Duration::from_millis(setup.timeout_ms);
    let options = ServerOptions::new()
        .with_max_message_size(SERVER_MAX)
        .with_timeout(timeout)
        .with_idle_timeout(LONG)
        .with_max_connections(64);
    let server = IpcServer::bind_with(endpoint.path(), options).await.expect("bind");
    let gauge = server.connection_gauge();
    let bus = EventBus::with_options(
        BusOptions::new()
            .with_queue_capacity(BUS_CAPACITY)
            .with_queue_bytes(BUS_BYTES)
            .with_retained_events(RETAINED),
    );
    let ready = Arc::new(Mutex::new(HashMap::new()));
    let outcomes = Outcomes::default();
    let (shutdown, stop) = watch::channel(false);
    let serving = match setup.serving {
        Serving::Each => tokio::spawn(serve_each(
            server,
            bus.clone(),
            Arc::clone(&ready),
            Arc::clone(&outcomes),
            stop,
        )),
        Serving::Until { grace_ms } => {
            let mut stop = stop;
            let stopped = async move {
                let _ = stop.wait_for(|stop| *stop).await;
            };
            let grace = Duration::from_millis(grace_ms);
            let handler = handler(Arc::clone(&ready));
            tokio::spawn(bunctl_ipc::serve_until(server, bus.clone(), handler, stopped, grace))
        }
    };
    let mut world = World {
        setup,
        timeout,
        endpoint,
        bus,
        gauge,
        clients: (0..CLIENTS).map(|_| None).collect(),
        zombies: Vec::new(),
        records: Vec::new(),
        outcomes,
        checked_outcomes: 0,
        ready,
        shutdown,
        serving,
        shut_down: false,
        shutdown_at: None,
        gone_busy_until: Instant::now(),
        gone_unsettled: 0,
        next_id: 0,
        next_seq: 0,
        published: HashMap::new(),
        cursors: (0..CLIENTS).map(|_| None).collect(),
    };

    for op in ops {
        if world.shut_down {
            break;
        }
        step(&mut world, op).await?;
        check_outcomes(&mut world)?;
        prop_assert!(
            world.gauge.open() <= world.connected() + world.gone_unsettled + world.zombies.len(),
            "{} connections open for {} clients ({} gone, not yet settled; {} never reading)",
            world.gauge.open(),
            world.connected(),
            world.gone_unsettled,
            world.zombies.len()
        );
    }
    if !world.shut_down {
        for i in 0..CLIENTS {
            if world.clients[i].as_ref().is_some_and(|c| c.watch.subscription.is_some()) {
                step(&mut world, Op::Drain(i)).await?;
            }
        }
        // Every live client is still paired correctly after everything above.
        for i in 0..CLIENTS {
            if world.clients[i].is_some() {
                let last =
                    Op::Request { client: i, delay_ms: 0, timeout_ms: 600_000, oversize: false };
                step(&mut world, last).await?;
            }
        }
        step(&mut world, Op::Quiesce).await?;
        step(&mut world, Op::Shutdown).await?;
    }
    check_outcomes(&mut world)?;

    eventually(|| world.gauge.open() == 0 && alive_tasks() == tasks_before).await;
    prop_assert_eq!(world.gauge.open(), 0, "connection slots not returned");
    prop_assert_eq!(world.bus.subscriber_count(), 0, "subscriptions not removed");
    prop_assert_eq!(alive_tasks(), tasks_before, "tasks left behind");
    drop(world);
    settle(Instant::now()).await;
    if let (Some(before), Some(after)) = (fds_before, open_descriptors()) {
        prop_assert_eq!(after, before, "descriptors leaked");
    }
    Ok(())
}

async fn step(world: &mut World, op: Op) -> Result<(), TestCaseError> {
    match op {
        Op::Connect(i) => connect(world, i).await,
        Op::Request { client, delay_ms, timeout_ms, oversize } => {
            request(world, client, delay_ms, timeout_ms, oversize).await
        }
        Op::DropRequest { client, delay_ms, after_ms } => {
            drop_request(world, client, delay_ms, after_ms).await
        }
        Op::Subscribe { client, filter: f, drain_first } => {
            resubscribe(world, client, Some(filter(f)), drain_first).await
        }
        Op::Unsubscribe { client, drain_first } => {
            resubscribe(world, client, None, drain_first).await
        }
        Op::Publish { log, app_a, count, big, padded } => {
            publish(world, log, app_a, count, big, padded);
            Ok(())
        }
        Op::Drain(i) => drain(world, i).await,
        Op::SteadyRead { client, ticks, per_tick, reads, tick_ms, pad } => {
            steady_read(world, client, ticks, per_tick, reads, tick_ms, pad).await
        }
        Op::FloodedRequest { client, delay_ms, flood } => {
            flooded_request(world, client, delay_ms, flood).await
        }
        Op::Burst { client, count, pad, request_pad, per_tick, tick_ms } => {
            burst(world, client, count, pad, request_pad, per_tick, tick_ms).await
        }
        Op::OversizeLocal(i) => oversize_local(world, i).await,
        Op::OversizeRemote(i) => oversize_remote(world, i).await,
        Op::Disconnect(i) => {
            drop(world.remove(i));
            Ok(())
        }
        Op::DisconnectMidFrame(i) => disconnect_mid_frame(world, i).await,
        // A named pipe has no half-close: its client can only close both ways.
        Op::HalfClose { .. } | Op::TruncatedAfterRequest { .. } if cfg!(windows) => Ok(()),
        Op::HalfClose { client, read, pad, flood } => {
            publish(world, true, true, flood, 0, pad > 0);
            // The server forwards them before it sees the end of the input.
            settle(Instant::now()).await;
            half_close(world, client, read).await
        }
        Op::TruncatedAfterRequest { client, delay_ms } => {
            truncated_after_request(world, client, delay_ms).await
        }
        Op::StalledFrame { client, subscribe, finish, flood } => {
            if subscribe {
                resubscribe(world, client, Some(filter(0)), false).await?;
            }
            stalled_frame(world, client, finish, flood).await
        }
        Op::GatedRequest { client, before, after, pad } => {
            resubscribe(world, client, Some(filter(0)), false).await?;
            gated_request(world, client, before, after, pad).await
        }
        Op::Follow { client, filter: f, from, n } => follow(world, client, f, from, n).await,
        Op::Quiesce => quiesce(world).await,
        Op::Shutdown => shutdown(world).await,
    }
}

async fn connect(world: &mut World, i: usize) -> Result<(), TestCaseError> {
    if world.clients[i].is_some() {
        return Ok(());
    }
    let options = ClientOptions::new()
        .with_max_message_size(CLIENT_MAX)
        .with_timeout(LONG)
        .with_max_held_events(HELD_EVENTS);
    let client = IpcClient::connect_with(world.endpoint.path(), options).await.expect("connect");
    world.records.push(Record::default());
    let conn = world.records.len() - 1;
    // Accepted before anything else happens: a client still in the listener's backlog when the
    // server shuts down is reset, which is not what the model tests.
    match world.setup.serving {
        Serving::Each => {
            let outcomes = Arc::clone(&world.outcomes);
            eventually(|| outcomes.lock().expect("lock").len() > conn).await;
        }
        Serving::Until { .. } => settle(Instant::now()).await,
    }
    world.clients[i] =
        Some(Client { client, conn, server_free_at: Instant::now(), watch: Watch::default() });
    Ok(())
}

async fn request(
    world: &mut World,
    i: usize,
    delay_ms: u64,
    timeout_ms: u64,
    oversize: bool,
) -> Result<(), TestCaseError> {
    let (id, message) = world.next_request(delay_ms, if oversize { SERVER_MAX } else { 0 });
    let Some(conn) = world.clients[i].as_ref().map(|c| c.conn) else { return Ok(()) };
    let reply_at = world.owe(conn, Some(id));
    let Some(c) = world.clients[i].as_mut() else { return Ok(()) };
    let timeout = Duration::from_millis(timeout_ms);
    c.client.set_timeout(timeout);
    let sent = Instant::now();
    let due = c.server_free_at.max(sent) + Duration::from_millis(delay_ms);
    c.server_free_at = due;
    let result = c.client.request(&message).await;
    match &result {
        Ok(IpcResponse::Error { message: refused }) if oversize => {
            reached::note(&reached::SUBSTITUTE_REPLIES);
            prop_assert!(refused.starts_with("reply not sent"), "not the substitute: {refused}");
            world.answered(conn, reply_at);
        }
        Ok(reply) => {
            prop_assert_eq!(reply, &echo_of(&message), "a reply to another request");
            world.answered(conn, reply_at);
        }
        Err(IpcError::Timeout { .. }) => {}
        Err(e) if e.is_disconnect() => return cut_off(world, i).await,
        Err(e) => prop_assert!(false, "request failed: {e}"),
    }
    if due + MARGIN < sent + timeout {
        prop_assert!(result.is_ok(), "due in time, yet {result:?}");
    } else if due > sent + timeout + MARGIN {
        prop_assert!(result.is_err(), "answered after its deadline: {result:?}");
    }
    Ok(())
}

async fn drop_request(
    world: &mut World,
    i: usize,
    delay_ms: u64,
    after_ms: u64,
) -> Result<(), TestCaseError> {
    let (id, message) = world.next_request(delay_ms, 0);
    let Some(conn) = world.clients[i].as_ref().map(|c| c.conn) else { return Ok(()) };
    let reply_at = world.owe(conn, Some(id));
    let Some(c) = world.clients[i].as_mut() else { return Ok(()) };
    c.client.set_timeout(LONG);
    let due = c.server_free_at.max(Instant::now()) + Duration::from_millis(delay_ms);
    c.server_free_at = due;
    let reply = tokio::select! {
        reply = c.client.request(&message) => Some(reply),
        _ = tokio::time::sleep(Duration::from_millis(after_ms)) => None,
    };
    match reply {
        Some(Ok(reply)) => {
            prop_assert_eq!(reply, echo_of(&message));
            world.answered(conn, reply_at);
        }
        Some(Err(e)) if e.is_disconnect() => return cut_off(world, i).await,
        Some(Err(e)) => prop_assert!(false, "request failed: {e}"),
        None => {}
    }
    Ok(())
}

/// Subscribes (`Some`) or unsubscribes. Without `drain_first`, what the old subscription still
/// had waiting arrives before the reply, delivered or announced; the model checks both.
async fn resubscribe(
    world: &mut World,
    i: usize,
    subscription: Option<SubscriptionType>,
    drain_first: bool,
) -> Result<(), TestCaseError> {
    if drain_first && world.clients[i].as_ref().is_some_and(|c| c.watch.subscription.is_some()) {
        drain(world, i).await?;
        if world.clients[i].is_none() {
            return Ok(());
        }
    }
    let Some(conn) = world.clients[i].as_ref().map(|c| c.conn) else { return Ok(()) };
    let reply_at = world.owe(conn, None);
    let Some(c) = world.clients[i].as_mut() else { return Ok(()) };
    c.client.set_timeout(LONG);
    let message = match subscription.clone() {
        Some(subscription) => IpcMessage::Subscribe { subscription },
        None => IpcMessage::Unsubscribe,
    };
    if let Err(e) = c.client.send(&message).await {
        prop_assert!(e.is_disconnect(), "send: {e}");
        return cut_off(world, i).await;
    }
    loop {
        match c.client.recv().await {
            Ok(IpcResponse::Event { event_type, data }) => {
                c.watch.account(&Event::new(event_type, data))?;
            }
            Ok(IpcResponse::Success { .. }) => break,
            Err(e) if e.is_disconnect() => return cut_off(world, i).await,
            other => prop_assert!(false, "expected the subscription's reply, got {other:?}"),
        }
    }
    prop_assert!(
        c.watch.expected.is_empty(),
        "{} events of the old subscription neither delivered nor announced before the reply",
        c.watch.expected.len()
    );
    c.server_free_at = c.server_free_at.max(Instant::now());
    c.watch = Watch { subscription, ..Watch::default() };
    world.answered(conn, reply_at);
    Ok(())
}

fn publish(world: &mut World, log: bool, app_a: bool, count: usize, big: u32, padded: bool) {
    let (kind, app) = (if log { LOG_LINE } else { STATUS_CHANGE }, if app_a { "a" } else { "b" });
    for n in 0..count {
        let pad = if big & (1 << (n % 32)) != 0 {
            CLIENT_MAX
        } else if padded {
            PAD
        } else {
            0
        };
        world.publish(kind, app, pad);
    }
}

impl Watch {
    /// Notes that event `seq` was published, if the subscription matches it.
    fn expect(&mut self, seq: u64, kind: &str, app: &str) {
        if self.subscription.as_ref().is_some_and(|f| f.matches(kind, Some(app))) {
            self.expected.push_back(seq);
        }
    }

    /// Accounts for one event the client received: the next expected one (after as many as
    /// the notices since the last one announced), or a notice.
    fn account(&mut self, event: &Event) -> Result<(), TestCaseError> {
        if event.event_type == RESET {
            prop_assert!(self.reset_due, "a reset notice nobody was owed: {:?}", event);
            self.reset_due = false;
            reached::note(&reached::RESETS);
            self.cursor = Some((0, true));
            return Ok(());
        }
        prop_assert!(!self.reset_due, "the reset notice must come first, not {:?}", event);
        // The model's numbering is the bus's; raw reads drop positions, not the data's.
        // Notices do not move a cursor.
        let reached = if event.missed().is_some() { None } else { event.data["seq"].as_u64() };
        if let (Some((cursor, placed)), Some(reached)) = (&mut self.cursor, reached) {
            *cursor = if *placed { (*cursor).max(reached) } else { reached };
            *placed = true;
        }
        if let Some(missed) = event.missed() {
            reached::note(&reached::NOTICES);
            let from = self.announced as usize;
            self.announced += missed;
            prop_assert!(
                self.announced <= self.expected.len() as u64,
                "announced {} missed, only {} outstanding",
                self.announced,
                self.expected.len()
            );
            // The notice names exactly the positions of the first and last it counts.
            if let Some(range) = event.lost_range() {
                let (first, last) =
                    (self.expected[from], self.expected[self.announced as usize - 1]);
                prop_assert_eq!(range, first..=last, "the range of a notice of {} lost", missed);
            }
            if self.announced == self.expected.len() as u64 {
                self.expected.clear();
                self.announced = 0;
            }
            return Ok(());
        }
        prop_assert!(self.subscription.is_some(), "an event while not subscribed: {:?}", event);
        let seq = event.data["seq"].as_u64().expect("seq");
        // The model numbers events as the bus does; `recv` and raw connections drop positions.
        if let Some(position) = event.seq() {
            prop_assert_eq!(position, seq, "the event's position on the bus");
        }
        let at = self.expected.iter().position(|s| *s == seq);
        prop_assert!(at.is_some(), "event {seq} does not match, or came twice or out of order");
        let at = at.unwrap_or_default();
        prop_assert_eq!(
            at as u64,
            self.announced,
            "a gap of {} before event {} announced as {}",
            at,
            seq,
            self.announced
        );
        self.expected.drain(..=at);
        self.announced = 0;
        Ok(())
    }
}

/// Reads the next event of `c`, which must come: the client still expects some. `None` when
/// the server has ended the connection.
async fn next_expected(c: &mut Client) -> Result<Option<Event>, TestCaseError> {
    match tokio::time::timeout(LONG, c.client.next_event()).await {
        Ok(Ok(event)) => Ok(Some(event)),
        Ok(Err(e)) if e.is_disconnect() => Ok(None),
        Ok(Err(e)) => Err(TestCaseError::fail(format!(
            "{} events outstanding, but the connection failed: {e}",
            c.watch.expected.len()
        ))),
        Err(_) => Err(TestCaseError::fail(format!(
            "{} events never arrived nor were announced",
            c.watch.expected.len()
        ))),
    }
}

/// The server ended client `i`'s connection: only a send timeout may do that here (whether it
/// had the right to, `check_outcomes` judges), and only where the model can see it.
async fn cut_off(world: &mut World, i: usize) -> Result<(), TestCaseError> {
    let Some(conn) = world.clients[i].as_ref().map(|c| c.conn) else { return Ok(()) };
    server_cut_off(world, conn, i).await?;
    world.remove(i);
    Ok(())
}

/// Checks that the server ended connection `conn` (client `i`'s) for a reply it did not read.
async fn server_cut_off(world: &World, conn: usize, i: usize) -> Result<(), TestCaseError> {
    prop_assert!(matches!(world.setup.serving, Serving::Each), "client {} cut off", i);
    reached::note(&reached::CUT_OFF_READERS);
    let outcomes = Arc::clone(&world.outcomes);
    eventually(|| outcomes.lock().expect("lock").get(conn).is_some_and(Option::is_some)).await;
    let outcomes = outcomes.lock().expect("lock");
    let outcome = outcomes.get(conn).and_then(Option::as_ref).map(|(outcome, _)| outcome);
    prop_assert!(
        matches!(outcome, Some(Err(IpcError::Timeout { operation: Operation::Send, .. }))),
        "client {} cut off; the server says {:?}",
        i,
        outcome
    );
    Ok(())
}

async fn drain(world: &mut World, i: usize) -> Result<(), TestCaseError> {
    let Some(c) = world.clients[i].as_mut() else { return Ok(()) };
    while !c.watch.expected.is_empty() || c.watch.reset_due {
        let Some(event) = next_expected(c).await? else { return cut_off(world, i).await };
        c.watch.account(&event)?;
    }
    if let Some(cursor) = c.watch.cursor {
        // The client's cursor is where the model says the events it handed out reached.
        let want = cursor.0;
        prop_assert_eq!(c.client.cursor().map(|c| c.seq), Some(want), "the follower's cursor");
    }
    Ok(())
}

/// The `Follow` operation (see `Op::Follow`).
async fn follow(
    world: &mut World,
    i: usize,
    f: u8,
    from: u8,
    n: usize,
) -> Result<(), TestCaseError> {
    resubscribe(world, i, None, false).await?;
    let Some(conn) = world.clients[i].as_ref().map(|c| c.conn) else { return Ok(()) };
    let subscription = filter(f);
    let instance = world.bus.instance().to_owned();
    let saved = world.cursors[i].clone().filter(|c| c.instance == instance);
    let from = if from == 2 && saved.is_none() { 3 } else { from };
    let at = |seq: u64| Cursor { instance: instance.clone(), seq };
    let (request, expected, cursor) = match from {
        0 => (Follow::live(subscription.clone()), VecDeque::new(), (world.next_seq, true)),
        1 => {
            let kept = world.kept(&subscription);
            let last = kept.len().saturating_sub(n);
            let replay = kept.into_iter().skip(last).collect();
            (Follow::history(subscription.clone(), n), replay, (world.next_seq, false))
        }
        2 | 3 => {
            let seq = match saved {
                Some(saved) if from == 2 => saved.seq,
                _ => world.next_seq * n as u64 / 19,
            };
            let request = Follow::after(subscription.clone(), &at(seq));
            (request, world.replay_after(&subscription, seq), (seq, true))
        }
        _ => {
            let other = Cursor { instance: "0".repeat(32), seq: n as u64 };
            let request = Follow::after(subscription.clone(), &other);
            (request, world.replay_after(&subscription, 0), (n as u64, true))
        }
    };
    let Some(c) = world.clients[i].as_mut() else { return Ok(()) };
    let asks_hello = c.client.server_info().is_none();
    let hello_at = asks_hello.then(|| world.owe(conn, None));
    let reply_at = world.owe(conn, None);
    let Some(c) = world.clients[i].as_mut() else { return Ok(()) };
    match c.client.follow(request).await {
        Ok(_) => {}
        Err(e) if e.is_disconnect() => return cut_off(world, i).await,
        Err(e) => prop_assert!(false, "follow: {e}"),
    }
    prop_assert_eq!(c.client.server_info().map(|s| s.protocol), Some(1));
    c.server_free_at = c.server_free_at.max(Instant::now());
    reached::note(&reached::FOLLOWS);
    c.watch = Watch {
        subscription: Some(subscription),
        expected,
        announced: 0,
        reset_due: from == 4,
        cursor: Some(cursor),
    };
    prop_assert_eq!(
        c.client.cursor().map(|c| c.seq),
        Some(cursor.0),
        "the cursor right after the reply (the old one until a reset)"
    );
    if let Some(hello_at) = hello_at {
        world.answered(conn, hello_at);
    }
    world.answered(conn, reply_at);
    Ok(())
}

impl World {
    /// The windows of kept events that `subscription` matches: each app and kind's events.
    fn windows<'a>(
        &'a self,
        subscription: &'a SubscriptionType,
    ) -> impl Iterator<Item = &'a [u64]> {
        self.published
            .iter()
            .filter(|((app, kind), _)| subscription.matches(kind, Some(app)))
            .map(|(_, seqs)| seqs.as_slice())
    }

    /// What the bus keeps that `subscription` matches, oldest first.
    fn kept(&self, subscription: &SubscriptionType) -> Vec<u64> {
        let mut kept: Vec<u64> = self
            .windows(subscription)
            .flat_map(|seqs| seqs[seqs.len().saturating_sub(RETAINED)..].iter().copied())
            .collect();
        kept.sort_unstable();
        kept
    }

    /// What a follower resuming after `after` is owed, in the order it is owed: the forgotten
    /// events a notice must count, then the kept ones after `after`. The bus remembers the
    /// positions of the last `RETAINED` forgotten events of each window: a cursor among or
    /// after those gets exactly the forgotten ones after it; one before them but not before
    /// the first forgotten gets all of the window's (it over-counts then, by design).
    fn replay_after(&self, subscription: &SubscriptionType, after: u64) -> VecDeque<u64> {
        let mut forgotten: Vec<u64> = self
            .windows(subscription)
            .map(|seqs| &seqs[..seqs.len().saturating_sub(RETAINED)])
            .filter(|gone| gone.last().is_some_and(|last| *last > after))
            .flat_map(|gone| {
                let remembered = &gone[gone.len().saturating_sub(RETAINED)..];
                let exact = gone[0] > after || remembered[0] <= after;
                let counted = if exact && gone[0] <= after { remembered } else { gone };
                counted.iter().copied().filter(move |seq| !exact || *seq > after)
            })
            .collect();
        forgotten.sort_unstable();
        let kept = self.kept(subscription).into_iter().filter(|seq| *seq > after);
        forgotten.into_iter().chain(kept).collect()
    }
}

async fn steady_read(
    world: &mut World,
    i: usize,
    ticks: u32,
    per_tick: usize,
    reads: usize,
    tick_ms: u64,
    pad: usize,
) -> Result<(), TestCaseError> {
    if world.clients[i].is_none() {
        return Ok(());
    }
    for _ in 0..ticks {
        publish(world, true, true, per_tick, 0, pad > 0);
        tokio::time::sleep(Duration::from_millis(tick_ms)).await;
        let Some(c) = world.clients[i].as_mut() else { return Ok(()) };
        for _ in 0..reads {
            if c.watch.expected.is_empty() {
                break;
            }
            let Some(event) = next_expected(c).await? else { return cut_off(world, i).await };
            c.watch.account(&event)?;
        }
    }
    Ok(())
}

async fn flooded_request(
    world: &mut World,
    i: usize,
    delay_ms: u64,
    flood: usize,
) -> Result<(), TestCaseError> {
    let (id, message) = world.next_request(delay_ms, 0);
    let Some(conn) = world.clients[i].as_ref().map(|c| c.conn) else { return Ok(()) };
    let reply_at = world.owe(conn, Some(id));
    // The flood, published meanwhile in chunks larger than the bus keeps per subscriber; who
    // expects which event is noted once the request is done (nothing is read before that).
    let bus = world.bus.clone();
    let first = world.next_seq + 1;
    let publisher = async move {
        for chunk in 0..flood.div_ceil(12) {
            for n in 0..12.min(flood - chunk * 12) {
                let seq = first + (chunk * 12 + n) as u64;
                bus.publish(LOG_LINE, Some("a"), json!({ "seq": seq, "pad": "" }));
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    };
    let Some(c) = world.clients[i].as_mut() else { return Ok(()) };
    c.client.set_timeout(LONG);
    if flood > HELD_EVENTS && delay_ms > 0 {
        // All of the flood comes before the reply: more than the client holds back.
        reached::note(&reached::HELD_OVERFLOWS);
    }
    let (reply, ()) = tokio::join!(c.client.request(&message), publisher);
    c.server_free_at = c.server_free_at.max(Instant::now());
    for _ in 0..flood {
        world.note_published(LOG_LINE, "a");
    }
    match reply {
        Ok(reply) => {
            prop_assert_eq!(reply, echo_of(&message), "a reply to another request");
            world.answered(conn, reply_at);
            Ok(())
        }
        Err(e) if e.is_disconnect() => cut_off(world, i).await,
        Err(e) => Err(TestCaseError::fail(format!("request failed: {e}"))),
    }
}

async fn burst(
    world: &mut World,
    i: usize,
    count: usize,
    pad: usize,
    request_pad: usize,
    per_tick: usize,
    tick_ms: u64,
) -> Result<(), TestCaseError> {
    if world.clients[i].as_ref().is_none_or(|c| c.watch.subscription.is_some()) {
        // Events would interleave with the replies: bursts are for plain clients.
        return Ok(());
    }
    let mut requests = Vec::with_capacity(count);
    for _ in 0..count {
        requests.push(world.next_padded_request(0, pad, request_pad));
    }
    let Some(mut c) = world.remove(i) else { return Ok(()) };
    let owed: Vec<usize> = requests.iter().map(|(id, _)| world.owe(c.conn, Some(*id))).collect();
    let owed_before = c.client.unanswered_requests();
    c.client.set_timeout(LONG);
    let (conn, held) = c.client.into_connection();
    prop_assert!(held.is_empty(), "not subscribed, yet events held: {held:?}");
    let (mut rx, mut tx) = conn.split();
    let messages: Vec<IpcMessage> = requests.iter().map(|(_, m)| m.clone()).collect();
    let sending = tokio::spawn(async move {
        for message in &messages {
            if tx.send(message).await.is_err() {
                break;
            }
        }
        tx
    });
    // Late replies of abandoned requests come first.
    for _ in 0..owed_before {
        if let Err(e) = rx.recv().await {
            prop_assert!(e.is_disconnect(), "an owed reply: {e}");
        }
    }
    let mut got = 0;
    'reading: while got < count {
        for _ in 0..per_tick {
            match rx.recv().await {
                Ok(reply) => {
                    prop_assert_eq!(
                        &reply,
                        &echo_of(&requests[got].1),
                        "reply {} of the burst",
                        got
                    );
                    world.answered(c.conn, owed[got]);
                    got += 1;
                    if got == count {
                        break 'reading;
                    }
                }
                // The server gave up on this slow reader: `check_outcomes` judges whether it
                // had the right to.
                Err(e) if e.is_disconnect() => {
                    prop_assert!(matches!(world.setup.serving, Serving::Each), "cut off: {e}");
                    reached::note(&reached::CUT_OFF_READERS);
                    break 'reading;
                }
                Err(e) => prop_assert!(false, "burst reply {got}: {e}"),
            }
        }
        tokio::time::sleep(Duration::from_millis(tick_ms)).await;
    }
    let tx = sending.await.expect("sender");
    drop((rx, tx));
    Ok(())
}

async fn oversize_local(world: &mut World, i: usize) -> Result<(), TestCaseError> {
    let Some(c) = world.clients[i].as_mut() else { return Ok(()) };
    let message = IpcMessage::Start { name: "big".into(), config: "x".repeat(CLIENT_MAX) };
    let owed = c.client.unanswered_requests();
    let e = c.client.request(&message).await.expect_err("over the client's limit");
    prop_assert!(e.is_recoverable(), "refused locally, the connection goes on: {e}");
    prop_assert_eq!(c.client.unanswered_requests(), owed, "nothing was sent, nothing is owed");
    Ok(())
}

async fn oversize_remote(world: &mut World, i: usize) -> Result<(), TestCaseError> {
    if world.clients[i].as_ref().is_some_and(|c| c.watch.subscription.is_some()) {
        drain(world, i).await?;
    }
    let Some(conn) = world.clients[i].as_ref().map(|c| c.conn) else { return Ok(()) };
    let reply_at = world.owe(conn, None);
    let Some(c) = world.clients[i].as_mut() else { return Ok(()) };
    c.client.set_timeout(LONG);
    let message = IpcMessage::Start { name: "big".into(), config: "x".repeat(SERVER_MAX) };
    match c.client.request(&message).await {
        Ok(IpcResponse::Error { message }) => {
            prop_assert!(message.contains("exceeds maximum"), "{message}")
        }
        Err(e) if e.is_disconnect() => return cut_off(world, i).await,
        other => prop_assert!(false, "expected the server's refusal, got {other:?}"),
    }
    // The server closes after saying why (and, if subscribed, after a last notice).
    loop {
        match c.client.recv().await {
            Ok(IpcResponse::Event { event_type, data }) => {
                c.watch.account(&Event::new(event_type, data))?;
            }
            Err(IpcError::Closed) => break,
            other => prop_assert!(false, "expected the end, got {other:?}"),
        }
    }
    prop_assert!(c.watch.expected.is_empty(), "events lost at the close");
    world.answered(conn, reply_at);
    world.remove(i);
    Ok(())
}

async fn disconnect_mid_frame(world: &mut World, i: usize) -> Result<(), TestCaseError> {
    if let Some(c) = world.remove(i) {
        use tokio::io::AsyncWriteExt;
        let (mut conn, _) = c.client.into_connection();
        let _ = conn.get_mut().write_all(&[40, 0, 0, 0, b'{']).await;
    }
    Ok(())
}

/// The client ends its input. Reading on, it gets every reply it is owed and every event it
/// expects (or a notice for them), then the end; not reading, it leaves the server to time out
/// whatever does not fit the socket.
async fn half_close(world: &mut World, i: usize, read: bool) -> Result<(), TestCaseError> {
    use tokio::io::AsyncWriteExt;
    let Some(c) = world.remove(i) else { return Ok(()) };
    world.records[c.conn].input_ended_at = Some(Instant::now());
    let Client { mut client, mut watch, .. } = c;
    client.set_timeout(LONG);
    let owed = client.unanswered_requests();
    let (mut conn, held) = client.into_connection();
    let _ = conn.get_mut().shutdown().await;
    if !read {
        world.zombies.push(conn);
        return Ok(());
    }
    for event in held {
        watch.account(&event)?;
    }
    let mut replies = 0;
    loop {
        match conn.recv().await {
            Ok(IpcResponse::Event { event_type, data }) => {
                watch.account(&Event::new(event_type, data))?
            }
            Ok(_) => replies += 1,
            Err(IpcError::Closed) => break,
            Err(e) => prop_assert!(false, "half-closed, reading: {e}"),
        }
    }
    prop_assert_eq!(replies, owed, "replies owed when the client half-closed");
    prop_assert!(
        watch.expected.is_empty(),
        "{} events neither delivered nor announced before the end",
        watch.expected.len()
    );
    Ok(())
}

async fn truncated_after_request(
    world: &mut World,
    i: usize,
    delay_ms: u64,
) -> Result<(), TestCaseError> {
    use tokio::io::AsyncWriteExt;
    let (id, message) = world.next_request(delay_ms, 0);
    let Some(c) = world.remove(i) else { return Ok(()) };
    let reply_at = world.owe(c.conn, Some(id));
    world.records[c.conn].input_ended_at = Some(Instant::now());
    let Client { mut client, mut watch, conn: n, .. } = c;
    client.set_timeout(LONG);
    let owed = client.unanswered_requests();
    let (mut conn, held) = client.into_connection();
    for event in held {
        watch.account(&event)?;
    }
    conn.send(&message).await.expect("send");
    let _ = conn.get_mut().write_all(&[40, 0, 0, 0, b'{']).await;
    let _ = conn.get_mut().shutdown().await;
    let mut replies = Vec::new();
    loop {
        match conn.recv().await {
            Ok(IpcResponse::Event { event_type, data }) => {
                watch.account(&Event::new(event_type, data))?
            }
            Ok(reply) => replies.push(reply),
            Err(IpcError::Closed) => break,
            Err(e) => prop_assert!(false, "after a truncated frame, reading: {e}"),
        }
    }
    prop_assert_eq!(replies.len(), owed + 1, "replies owed when the frame was cut short");
    prop_assert_eq!(replies.last(), Some(&echo_of(&message)), "the complete request's reply");
    world.answered(n, reply_at);
    prop_assert!(watch.expected.is_empty(), "{} events lost", watch.expected.len());
    Ok(())
}

/// One frame read by a client that took its connection raw: an event (accounted for), or a
/// reply (kept). False once the connection has ended.
async fn read_raw(
    conn: &mut ClientConnection,
    watch: &mut Watch,
    replies: &mut Vec<IpcResponse>,
) -> Result<bool, TestCaseError> {
    match conn.recv().await {
        Ok(IpcResponse::Event { event_type, data }) => {
            watch.account(&Event::new(event_type, data))?;
        }
        Ok(reply) => replies.push(reply),
        Err(e) if e.is_disconnect() => return Ok(false),
        Err(e) => prop_assert!(false, "reading the raw connection: {e}"),
    }
    Ok(true)
}

/// A client that leaves the model to speak on its raw connection, with every reply it was
/// still owed read: its connection, its subscription's accounting and the server's index of
/// it. `None` if it is not connected, or if the server had cut it off for a reply it did not
/// read (checked).
async fn take_raw(
    world: &mut World,
    i: usize,
) -> Result<Option<(ClientConnection, Watch, usize)>, TestCaseError> {
    // A client that left a reply unread too long has been cut off already.
    let ended = world.clients[i].as_ref().is_some_and(|c| {
        world.outcomes.lock().expect("lock").get(c.conn).is_some_and(Option::is_some)
    });
    if ended {
        cut_off(world, i).await?;
        return Ok(None);
    }
    let Some(c) = world.remove(i) else { return Ok(None) };
    let Client { mut client, mut watch, conn: n, .. } = c;
    client.set_timeout(LONG);
    let owed = client.unanswered_requests();
    let (mut conn, held) = client.into_connection();
    for event in held {
        watch.account(&event)?;
    }
    // Replies still owed come first (the server reads no request before answering the one
    // before); one that waited too long has had the connection cut off.
    let mut replies = Vec::new();
    while replies.len() < owed {
        if !read_raw(&mut conn, &mut watch, &mut replies).await? {
            server_cut_off(world, n, i).await?;
            return Ok(None);
        }
    }
    Ok(Some((conn, watch, n)))
}

/// Half a request frame, a stall with events flowing (if subscribed), then the rest of the
/// frame within half the timeout (`finish`) or nothing more: the server must answer the
/// request in the first case and end the connection no sooner than the frame's timeout in the
/// second, while the client reads everything it is sent.
async fn stalled_frame(
    world: &mut World,
    i: usize,
    finish: bool,
    flood: usize,
) -> Result<(), TestCaseError> {
    use tokio::io::AsyncWriteExt;
    let Some((mut conn, mut watch, n)) = take_raw(world, i).await? else { return Ok(()) };
    let (id, message) = world.next_request(0, 0);
    let mut replies = Vec::new();
    let body = serde_json::to_vec(&message).expect("encode");
    let mut frame = u32::try_from(body.len()).expect("small").to_le_bytes().to_vec();
    frame.extend_from_slice(&body);
    let (first, rest) = frame.split_at(frame.len() / 2);
    conn.get_mut().write_all(first).await.expect("write");
    // Every earlier reply has been read: the server reads the frame at once.
    let started = Instant::now();
    world.records[n].frame_started_at = Some(started);
    // The server has the partial frame before the events come.
    settle(started).await;
    // Events a while into the frame: written to the client, which is activity, but not
    // progress on the frame, whose deadline stays where it was.
    tokio::time::sleep_until(started + world.timeout / 4).await;
    for _ in 0..flood {
        world.publish(LOG_LINE, "a", 0);
        watch.expect(world.next_seq, LOG_LINE, "a");
    }
    if finish {
        let resume = tokio::time::sleep_until(started + world.timeout / 2);
        tokio::pin!(resume);
        loop {
            tokio::select! {
                () = &mut resume => break,
                more = read_raw(&mut conn, &mut watch, &mut replies) => {
                    prop_assert!(more?, "the connection ended while its frame had time left");
                }
            }
        }
        conn.get_mut().write_all(rest).await.expect("write");
        let reply_at = world.owe(n, Some(id));
        while replies.is_empty() {
            prop_assert!(
                read_raw(&mut conn, &mut watch, &mut replies).await?,
                "the connection ended before the completed frame was answered"
            );
        }
        world.answered(n, reply_at);
        prop_assert_eq!(replies.last(), Some(&echo_of(&message)), "the completed frame's reply");
        prop_assert!(watch.expected.is_empty(), "{} events lost", watch.expected.len());
        // The client leaves.
        return Ok(());
    }
    while read_raw(&mut conn, &mut watch, &mut replies).await? {}
    let ended = Instant::now();
    prop_assert!(replies.is_empty(), "a reply to a frame never completed: {:?}", replies);
    prop_assert!(
        ended + MARGIN >= started + world.timeout,
        "the connection ended {:?} after its frame started, before the timeout",
        ended - started
    );
    prop_assert!(
        ended <= started + world.timeout + MARGIN,
        "the connection ended {:?} after its frame started, later than the timeout",
        ended - started
    );
    prop_assert!(watch.expected.is_empty(), "{} events lost", watch.expected.len());
    Ok(())
}

/// See [`Op::GatedRequest`]: the reply gate, with events published on both sides of the
/// handler's return while the output is full, so that the reply waits and later events queue
/// behind it.
async fn gated_request(
    world: &mut World,
    i: usize,
    before: usize,
    after: usize,
    pad: usize,
) -> Result<(), TestCaseError> {
    const DELAY_MS: u64 = 30;
    let Some((mut conn, mut watch, n)) = take_raw(world, i).await? else { return Ok(()) };
    let (id, message) = world.next_request(DELAY_MS, 0);
    let reply_at = world.owe(n, Some(id));
    conn.send(&message).await.expect("send");
    // Published within the first 20 ms, in chunks the server forwards while it can: enough,
    // padded, to fill its output, so that the reply waits behind them.
    for chunk in 0..before.div_ceil(8) {
        for _ in 0..8.min(before - chunk * 8) {
            world.publish(LOG_LINE, "a", pad);
            watch.expect(world.next_seq, LOG_LINE, "a");
        }
        settle(Instant::now()).await;
    }
    let ready = Arc::clone(&world.ready);
    prop_assert!(!ready.lock().expect("lock").contains_key(&id), "published after the handler");
    while !ready.lock().expect("lock").contains_key(&id) {
        settle(Instant::now()).await;
    }
    // The server has seen the handler return: what comes now is published after it.
    settle(Instant::now()).await;
    let boundary = world.next_seq;
    for _ in 0..after {
        world.publish(LOG_LINE, "a", pad);
        watch.expect(world.next_seq, LOG_LINE, "a");
    }
    let mut replies = Vec::new();
    while replies.is_empty() || !watch.expected.is_empty() {
        let event = match conn.recv().await {
            Ok(IpcResponse::Event { event_type, data }) => Event::new(event_type, data),
            Ok(reply) => {
                prop_assert!(replies.is_empty(), "a second reply: {:?}", reply);
                prop_assert_eq!(&reply, &echo_of(&message), "the gated request's reply");
                world.answered(n, reply_at);
                replies.push(reply);
                continue;
            }
            Err(e) if e.is_disconnect() => return server_cut_off(world, n, i).await,
            Err(e) => return Err(TestCaseError::fail(format!("reading: {e}"))),
        };
        if let Some(seq) = event.data.get("seq").and_then(serde_json::Value::as_u64) {
            reached::note(&reached::GATED_EVENTS);
            let published_after = seq > boundary;
            prop_assert_eq!(
                published_after,
                !replies.is_empty(),
                "event {} (published {} the handler returned, at {}) came {} the reply",
                seq,
                if published_after { "after" } else { "before" },
                boundary,
                if replies.is_empty() { "before" } else { "after" }
            );
        }
        watch.account(&event)?;
    }
    // The client leaves.
    Ok(())
}

async fn quiesce(world: &mut World) -> Result<(), TestCaseError> {
    // Connections that never read again are given their send timeout to end, from when the
    // server sees their end of input: after the handler it may still be running.
    let busy_until = world.busy_until().max(Instant::now());
    let zombies_done =
        if world.zombies.is_empty() { busy_until } else { busy_until + world.timeout };
    settle(zombies_done + MARGIN).await;
    // A client that left a reply unread too long has been cut off, whether it noticed or not.
    for i in 0..CLIENTS {
        let ended = world.clients[i].as_ref().is_some_and(|c| {
            world.outcomes.lock().expect("lock").get(c.conn).is_some_and(Option::is_some)
        });
        if ended {
            cut_off(world, i).await?;
        }
    }
    // Still connected, never reading: the server has ended them by itself.
    eventually(|| world.gauge.open() == world.connected()).await;
    prop_assert_eq!(world.gauge.open(), world.connected(), "open connections vs clients");
    world.zombies.clear();
    world.gone_unsettled = 0;
    Ok(())
}

/// Shuts the server down: every client that reads gets what it is owed, then the end; the
/// server is done within the send timeout of the later of the shutdown and its last handler.
async fn shutdown(world: &mut World) -> Result<(), TestCaseError> {
    let started = Instant::now();
    let last_handler = world.busy_until().max(started);
    if !world.zombies.is_empty() {
        reached::note(&reached::SHUTDOWNS_WITH_ZOMBIES);
    }
    world.shutdown.send_replace(true);
    world.shut_down = true;
    world.shutdown_at = Some(started);
    for i in 0..CLIENTS {
        let Some(mut c) = world.remove(i) else { continue };
        // Requests the server had not read when it shut down are not answered (their handler
        // never ran); on Unix the client then sees a reset rather than the end of the stream.
        // (Counted once the connection has ended: every handler that ran has returned.)
        let unread = || {
            let ready = world.ready.lock().expect("lock");
            let owed = world.records[c.conn].replies.iter().filter(|o| o.read.is_none());
            owed.filter(|o| o.id.is_some_and(|id| !ready.contains_key(&id))).count()
        };
        c.client.set_timeout(LONG);
        loop {
            match c.client.next_event().await {
                Ok(event) => c.watch.account(&event)?,
                Err(IpcError::Closed) => break,
                Err(e) if e.is_disconnect() && unread() > 0 => {
                    reached::note(&reached::RESETS_AT_SHUTDOWN);
                    break;
                }
                Err(e) => prop_assert!(false, "winding down: {e}"),
            }
        }
        let lost = c.watch.expected.len();
        prop_assert_eq!(lost, 0, "events neither delivered nor announced at shutdown");
        let unanswered = c.client.unanswered_requests();
        prop_assert_eq!(unanswered, unread(), "replies lost at shutdown");
    }
    let serving = &mut world.serving;
    let outcome = tokio::time::timeout(LONG, serving).await;
    let took = started.elapsed();
    prop_assert!(outcome.is_ok(), "the server did not stop");
    let limit = last_handler - started + world.timeout + MARGIN;
    let limit = match world.setup.serving {
        Serving::Until { grace_ms } => limit.min(Duration::from_millis(grace_ms) + MARGIN),
        Serving::Each => limit,
    };
    prop_assert!(took <= limit, "shutdown took {took:?}, more than {limit:?}");
    world.zombies.clear();
    Ok(())
}

/// Checks every connection that ended since the last check: how it ended must be one the
/// model allows, and a send timeout must have had something wait that long.
fn check_outcomes(world: &mut World) -> Result<(), TestCaseError> {
    let outcomes = world.outcomes.lock().expect("lock");
    let ready = world.ready.lock().expect("lock");
    while let Some(Some((outcome, ended))) = outcomes.get(world.checked_outcomes) {
        let n = world.checked_outcomes;
        world.checked_outcomes += 1;
        let record = &world.records[n];
        match outcome {
            Ok(()) => {}
            Err(e) if e.is_disconnect() => {}
            Err(IpcError::Timeout { operation: Operation::Send, after, .. }) => {
                reached::note(&reached::SEND_TIMEOUTS);
                let since = *ended - *after + MARGIN;
                let reply_waited = record.replies.iter().any(|owed| {
                    let ready_at = match owed.id {
                        Some(id) => ready.get(&id).copied(),
                        None => Some(owed.sent),
                    };
                    ready_at.is_some_and(|at| at <= since)
                        && owed.read.is_none_or(|read| read + MARGIN >= *ended)
                });
                let input_ended = record.input_ended_at.or(world.shutdown_at);
                let output_waited = input_ended.is_some_and(|at| at <= since);
                prop_assert!(
                    reply_waited || output_waited,
                    "connection {} timed out at {:?} with nothing owed for {:?}",
                    n,
                    ended,
                    after
                );
            }
            Err(IpcError::Timeout { operation: Operation::Receive, after, .. }) => {
                reached::note(&reached::FRAME_TIMEOUTS);
                let waited =
                    record.frame_started_at.is_some_and(|at| at + *after <= *ended + MARGIN);
                prop_assert!(
                    waited,
                    "connection {} timed out receiving at {:?} with no frame stalled for {:?}",
                    n,
                    ended,
                    after
                );
            }
            Err(e) => prop_assert!(false, "connection {n} failed: {e}"),
        }
    }
    Ok(())
}

/// How often the cases reached the paths that matter, printed at the end (`--nocapture`).
mod reached {
    use std::sync::atomic::{AtomicU64, Ordering};

    pub static SEND_TIMEOUTS: AtomicU64 = AtomicU64::new(0);
    pub static CUT_OFF_READERS: AtomicU64 = AtomicU64::new(0);
    pub static NOTICES: AtomicU64 = AtomicU64::new(0);
    pub static HELD_OVERFLOWS: AtomicU64 = AtomicU64::new(0);
    pub static RESETS_AT_SHUTDOWN: AtomicU64 = AtomicU64::new(0);
    pub static SHUTDOWNS_WITH_ZOMBIES: AtomicU64 = AtomicU64::new(0);
    pub static FRAME_TIMEOUTS: AtomicU64 = AtomicU64::new(0);
    pub static SUBSTITUTE_REPLIES: AtomicU64 = AtomicU64::new(0);
    pub static GATED_EVENTS: AtomicU64 = AtomicU64::new(0);
    pub static FOLLOWS: AtomicU64 = AtomicU64::new(0);
    pub static RESETS: AtomicU64 = AtomicU64::new(0);

    pub fn note(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn report() -> String {
        let n = |c: &AtomicU64| c.load(Ordering::Relaxed);
        format!(
            "send timeouts {}, slow readers cut off {}, lagged notices {}, held-queue overflows {}, \
             resets at shutdown {}, shutdowns with never-reading clients {}, stalled frames \
             timed out {}, oversize replies substituted {}, events checked against a gated reply {}, \
             follows {}, resets {}",
            n(&SEND_TIMEOUTS),
            n(&CUT_OFF_READERS),
            n(&NOTICES),
            n(&HELD_OVERFLOWS),
            n(&RESETS_AT_SHUTDOWN),
            n(&SHUTDOWNS_WITH_ZOMBIES),
            n(&FRAME_TIMEOUTS),
            n(&SUBSTITUTE_REPLIES),
            n(&GATED_EVENTS),
            n(&FOLLOWS),
            n(&RESETS)
        )
    }
}

fn cases() -> u32 {
    let default = if cfg!(windows) { 100 } else { 1000 };
    std::env::var("BUNCTL_MODEL_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(default)
}

/// The tests here take turns: each checks that the process's descriptors are back where
/// they were.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

#[test]
fn random_operation_sequences_keep_every_contract_of_the_daemon_path() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let config =
        ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() };
    let cases = setup().prop_flat_map(|s| (Just(s), prop::collection::vec(op(s), 1..40)));
    proptest!(config, |((setup, ops) in cases)| {
        paused_runtime().block_on(run_case(setup, ops))?;
    });
    eprintln!("model: {}", reached::report());
}

/// Runs one case on a paused current-thread runtime, taking its turn.
fn run_known_case(setup: Setup, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    paused_runtime().block_on(run_case(setup, ops))
}

fn paused_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("runtime")
}

#[test]
fn a_half_closed_client_that_never_reads_is_ended_a_timeout_after_its_handler_finishes() {
    // Found by the 100,000-case run: the end of input is read only once the handler is done.
    let ops = vec![
        Op::Connect(0),
        Op::Subscribe { client: 0, filter: 0, drain_first: false },
        Op::Request { client: 0, delay_ms: 400, timeout_ms: 50, oversize: false },
        Op::HalfClose { client: 0, read: false, pad: PAD, flood: 4 },
        Op::Quiesce,
    ];
    run_known_case(Setup { serving: Serving::Each, timeout_ms: 150 }, ops).expect("case");
}

#[test]
fn a_subscriber_whose_owed_reply_waits_behind_unread_events_is_cut_off_and_the_model_knows() {
    // Found by the 100,000-case run: the server rightly ends it; the model must know.
    let ops = vec![
        Op::Connect(2),
        Op::Subscribe { client: 2, filter: 0, drain_first: false },
        Op::Request { client: 2, delay_ms: 100, timeout_ms: 50, oversize: false },
        Op::SteadyRead { client: 2, ticks: 4, per_tick: 6, reads: 0, tick_ms: 50, pad: PAD },
        Op::Quiesce,
    ];
    run_known_case(Setup { serving: Serving::Each, timeout_ms: 150 }, ops).expect("case");
}

#[test]
fn a_frame_started_by_a_client_the_server_already_cut_off_is_the_cut_off_case() {
    // Found by CI: the client's reply waited unread past the send timeout, so the server had
    // ended the connection before the stalled frame was written.
    let ops = vec![
        Op::Connect(1),
        Op::Subscribe { client: 1, filter: 0, drain_first: false },
        Op::Connect(2),
        Op::Request { client: 1, delay_ms: 100, timeout_ms: 50, oversize: false },
        Op::SteadyRead { client: 2, ticks: 7, per_tick: 3, reads: 0, tick_ms: 5, pad: 0 },
        Op::Burst { client: 2, count: 129, pad: 0, request_pad: 0, per_tick: 1, tick_ms: 1 },
        Op::StalledFrame { client: 1, subscribe: false, finish: false, flood: 0 },
    ];
    run_known_case(Setup { serving: Serving::Each, timeout_ms: 150 }, ops).expect("case");
}

#[test]
fn a_reply_held_behind_a_full_output_goes_out_before_the_events_published_after_it() {
    // The reply gate's boundary: fails when the pump may take events past the held reply's
    // position.
    let ops = vec![Op::Connect(0), Op::GatedRequest { client: 0, before: 159, after: 3, pad: PAD }];
    run_known_case(Setup { serving: Serving::Each, timeout_ms: 400 }, ops).expect("case");
}

#[test]
fn a_reset_held_while_a_request_waits_is_never_dropped_by_the_held_queue() {
    // A follower of a restarted daemon's cursor gets `reset`, a notice and the replay, then
    // more live events than its held queue takes while a request waits: the queue must drop
    // events after the reset, never the reset itself (it once became a `lagged` of 1).
    let ops = vec![
        Op::Connect(2),
        Op::Publish { log: false, app_a: false, count: 7, big: 0, padded: false },
        Op::Follow { client: 2, filter: 0, from: 4, n: 0 },
        Op::Publish { log: false, app_a: false, count: 9, big: 0, padded: false },
        Op::Request { client: 2, delay_ms: 0, timeout_ms: 50, oversize: false },
    ];
    run_known_case(Setup { serving: Serving::Each, timeout_ms: 1000 }, ops).expect("case");
}
