//! Workloads and baselines shared by the benchmark binaries in `benches/`.
//!
//! Every workload runs against these implementations, in the same process and run:
//!
//! | label          | what                                                                   |
//! |----------------|------------------------------------------------------------------------|
//! | `floor`        | the same bytes through `socketpair(2)` on one thread: no runtime, no JSON |
//! | `framed`       | hand-written tokio `Framed` + `LengthDelimitedCodec` (u32 LE) + serde_json |
//! | `interprocess` | the same framing over the `interprocess` crate's tokio local socket     |
//! | `ours`         | bunctl-ipc: `IpcClient` + a `recv`/`send` loop per connection            |
//! | `ours-serve`   | bunctl-ipc: `IpcClient` + `serve_connection` (the reference daemon's path) |
//! | `ours-sink`    | bunctl-ipc: server on the split connection's `Stream`/`Sink`, like the baselines |
//! | `blocking`     | large messages only: serde_json over blocking sockets, two threads       |
#![allow(dead_code)]

/// Runs `$op` `$n` times; returns the total time and, if `$record`, each one's in ns.
macro_rules! timed_loop {
    ($n:expr, $record:expr, $op:expr) => {{
        let mut lat: Vec<u32> = Vec::with_capacity(if $record { $n as usize } else { 0 });
        let start = std::time::Instant::now();
        for _ in 0..$n {
            let t = std::time::Instant::now();
            $op;
            if $record {
                lat.push(t.elapsed().as_nanos().min(u32::MAX as u128) as u32);
            }
        }
        (start.elapsed(), lat)
    }};
}

pub mod baseline;
pub mod floor;
pub mod msgs;
pub mod ours;
pub mod sides;

use std::time::{Duration, Instant};

use bunctl_ipc::{EventBus, IpcClient, IpcMessage, IpcResponse};
use bytes::Bytes;
use tokio::sync::broadcast;

use baseline::{Interprocess, Tokio};
use ours::ServerMode;
use sides::{Driven, Flavor, Sides};

/// An implementation under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Imp {
    /// Raw bytes, one thread.
    Floor,
    /// tokio `Framed` + `LengthDelimitedCodec` + serde_json.
    Framed,
    /// `interprocess` + the same framing.
    Interprocess,
    /// bunctl-ipc, `recv`/`send` loop on the server.
    Ours,
    /// bunctl-ipc, `serve_connection` on the server.
    OursServe,
    /// bunctl-ipc, the split connection's `Stream`/`Sink` on the server.
    OursSink,
    /// serde_json over blocking sockets (large messages only).
    Blocking,
}

impl Imp {
    /// Label in reports.
    pub fn label(self) -> &'static str {
        match self {
            Imp::Floor => "floor",
            Imp::Framed => "framed",
            Imp::Interprocess => "interprocess",
            Imp::Ours => "ours",
            Imp::OursServe => "ours-serve",
            Imp::OursSink => "ours-sink",
            Imp::Blocking => "blocking",
        }
    }
}

/// Starts `server`'s side of a request/response workload on `sides` (one connection).
pub fn spawn_server(sides: &Sides, server: Imp) {
    let p = sides.path();
    match server {
        Imp::Ours => sides.spawn_server(move |ready| ours::server(p, 1, ServerMode::Loop, ready)),
        Imp::OursServe => {
            sides.spawn_server(move |ready| ours::server(p, 1, ServerMode::Serve, ready))
        }
        Imp::OursSink => {
            sides.spawn_server(move |ready| ours::server(p, 1, ServerMode::Sink, ready))
        }
        Imp::Framed => sides.spawn_server(move |ready| baseline::server::<Tokio>(p, 1, ready)),
        Imp::Interprocess => {
            sides.spawn_server(move |ready| baseline::server::<Interprocess>(p, 1, ready))
        }
        other => panic!("{other:?} has no server"),
    }
}

/// Small request/response round trips on one connection.
pub enum RoundTrip {
    /// See [`floor::RoundTrip`].
    Floor(floor::RoundTrip),
    /// bunctl-ipc.
    Ours(Driven<IpcClient>),
    /// tokio Framed.
    Framed(Driven<baseline::Client<Tokio>>),
    /// interprocess.
    Interprocess(Driven<baseline::Client<Interprocess>>),
}

impl RoundTrip {
    /// Sets up a server and a connected client of the same implementation.
    pub fn new(imp: Imp, flavor: Flavor) -> RoundTrip {
        Self::mixed(imp, imp, flavor)
    }

    /// Sets up `server`'s server and `client`'s client (the wire is the same for all).
    pub fn mixed(client: Imp, server: Imp, flavor: Flavor) -> RoundTrip {
        if client == Imp::Floor {
            return RoundTrip::Floor(floor::RoundTrip::new(
                msgs::frame(&msgs::small_request()),
                msgs::frame(&msgs::small_reply()),
            ));
        }
        let sides = Sides::new(flavor);
        let path = sides.path();
        spawn_server(&sides, server);
        match client {
            Imp::Ours | Imp::OursServe | Imp::OursSink => {
                RoundTrip::Ours(Driven::connect(sides, ours::connect(path)))
            }
            Imp::Framed => {
                RoundTrip::Framed(Driven::connect(sides, baseline::Client::connect(path)))
            }
            Imp::Interprocess => {
                RoundTrip::Interprocess(Driven::connect(sides, baseline::Client::connect(path)))
            }
            other => panic!("no {other:?} round trip"),
        }
    }

    /// `n` round trips; the total time and, if `record`, each one's in ns.
    pub fn run(&mut self, n: u64, record: bool) -> (Duration, Vec<u32>) {
        let req = msgs::small_request();
        match self {
            RoundTrip::Floor(f) => f.run(n, record),
            RoundTrip::Ours(d) => d.drive(move |mut c| async move {
                let out = timed_loop!(n, record, ours::request(&mut c, &req).await);
                (c, out)
            }),
            RoundTrip::Framed(d) => d.drive(move |mut c| async move {
                let out = timed_loop!(n, record, c.request(&req).await);
                (c, out)
            }),
            RoundTrip::Interprocess(d) => d.drive(move |mut c| async move {
                let out = timed_loop!(n, record, c.request(&req).await);
                (c, out)
            }),
        }
    }
}

/// Requests pipelined on one connection: one task writes them, another reads the replies.
/// With a large request this is the large-message throughput workload.
pub enum Pipelined {
    /// See [`floor::Pipelined`] / [`floor::Bulk`].
    Floor(floor::Pipelined),
    /// See [`floor::Bulk`].
    Bulk(floor::Bulk),
    /// See [`floor::blocking_json`].
    Blocking(IpcMessage),
    /// bunctl-ipc.
    Ours(Driven<ours::Halves>, IpcMessage),
    /// tokio Framed.
    Framed(Driven<baseline::Client<Tokio>>, IpcMessage),
    /// interprocess.
    Interprocess(Driven<baseline::Client<Interprocess>>, IpcMessage),
}

impl Pipelined {
    /// Sets up a server and a connected client of the same implementation, sending copies of
    /// `request`.
    pub fn new(imp: Imp, flavor: Flavor, request: IpcMessage) -> Pipelined {
        Self::mixed(imp, imp, flavor, request)
    }

    /// Sets up `server`'s server and `client`'s client.
    pub fn mixed(client: Imp, server: Imp, flavor: Flavor, request: IpcMessage) -> Pipelined {
        let small = request == msgs::small_request();
        match client {
            Imp::Floor if small => {
                return Pipelined::Floor(floor::Pipelined::new(
                    &msgs::frame(&request),
                    &msgs::frame(&msgs::small_reply()),
                ));
            }
            Imp::Floor => return Pipelined::Bulk(floor::Bulk::new(msgs::frame(&request))),
            Imp::Blocking => return Pipelined::Blocking(request),
            _ => {}
        }
        let sides = Sides::new(flavor);
        let path = sides.path();
        spawn_server(&sides, server);
        match client {
            Imp::Ours | Imp::OursServe | Imp::OursSink => {
                Pipelined::Ours(Driven::connect(sides, ours::connect_halves(path)), request)
            }
            Imp::Framed => {
                Pipelined::Framed(Driven::connect(sides, baseline::Client::connect(path)), request)
            }
            Imp::Interprocess => {
                let client = Driven::connect(sides, baseline::Client::connect(path));
                Pipelined::Interprocess(client, request)
            }
            other => panic!("no {other:?} client"),
        }
    }

    /// Sends `n` requests and waits for the last reply.
    pub fn run(&mut self, n: u64) -> Duration {
        match self {
            Pipelined::Floor(f) => f.run(n),
            Pipelined::Bulk(f) => f.run(n),
            Pipelined::Blocking(msg) => floor::blocking_json(msg, n),
            Pipelined::Ours(d, req) => {
                let req = req.clone();
                d.drive(move |h| ours::pipelined(h, req, n))
            }
            Pipelined::Framed(d, req) => {
                let req = req.clone();
                d.drive(move |c| c.pipelined(req, n))
            }
            Pipelined::Interprocess(d, req) => {
                let req = req.clone();
                d.drive(move |c| c.pipelined(req, n))
            }
        }
    }
}

/// Events published per round of a fan-out run; queues hold a whole round, so nothing is lost.
pub const FANOUT_ROUND: u64 = 4096;

/// One publisher, `subscribers` connections, every event delivered to (and parsed by) each.
pub enum Fanout {
    /// See [`floor::Fanout`].
    Floor(floor::Fanout),
    /// bunctl-ipc: `EventBus` + `serve_connection`, `IpcClient::next_event`.
    Ours(Driven<Vec<IpcClient>>, EventBus),
    /// tokio Framed + a `broadcast` channel of serialized events.
    Framed(Driven<Vec<baseline::Subscriber<Tokio>>>, broadcast::Sender<Bytes>),
    /// interprocess, likewise.
    Interprocess(Driven<Vec<baseline::Subscriber<Interprocess>>>, broadcast::Sender<Bytes>),
}

fn event(i: u64) -> IpcResponse {
    IpcResponse::Event { event_type: msgs::EVENT_TYPE.into(), data: msgs::event_data(i) }
}

fn baseline_fanout<T: baseline::Transport>(
    subscribers: usize,
) -> (Driven<Vec<baseline::Subscriber<T>>>, broadcast::Sender<Bytes>) {
    let sides = Sides::new(Flavor::Mt2);
    let path = sides.path();
    let (tx, _) = broadcast::channel(FANOUT_ROUND as usize);
    let (p, events) = (path.clone(), tx.clone());
    sides.spawn_server(move |ready| baseline::fanout_server::<T>(p, subscribers, events, ready));
    let driven = Driven::connect(sides, async move {
        let mut subs = Vec::with_capacity(subscribers);
        for _ in 0..subscribers {
            subs.push(baseline::Subscriber::<T>::connect(path.clone()).await);
        }
        subs
    });
    while tx.receiver_count() < subscribers {
        std::thread::sleep(Duration::from_millis(1));
    }
    (driven, tx)
}

impl Fanout {
    /// Sets up a server with `subscribers` subscribed connections (on `mt2`).
    pub fn new(imp: Imp, subscribers: usize) -> Fanout {
        match imp {
            Imp::Floor => Fanout::Floor(floor::Fanout::new(subscribers, &msgs::frame(&event(0)))),
            Imp::Ours | Imp::OursServe | Imp::OursSink => {
                let sides = Sides::new(Flavor::Mt2);
                let path = sides.path();
                let bus = EventBus::with_capacity(FANOUT_ROUND as usize);
                let (p, b) = (path.clone(), bus.clone());
                sides.spawn_server(move |ready| ours::fanout_server(p, subscribers, b, ready));
                let driven = Driven::connect(sides, async move {
                    let mut subs = Vec::with_capacity(subscribers);
                    for _ in 0..subscribers {
                        subs.push(ours::subscriber(path.clone()).await);
                    }
                    subs
                });
                Fanout::Ours(driven, bus)
            }
            Imp::Framed => {
                let (d, tx) = baseline_fanout::<Tokio>(subscribers);
                Fanout::Framed(d, tx)
            }
            Imp::Interprocess => {
                let (d, tx) = baseline_fanout::<Interprocess>(subscribers);
                Fanout::Interprocess(d, tx)
            }
            Imp::Blocking => panic!("no blocking fan-out"),
        }
    }

    /// Publishes `n` events and waits until every subscriber has
    /// parsed all of them.
    pub fn run(&mut self, n: u64) -> Duration {
        match self {
            Fanout::Floor(f) => f.run(n),
            Fanout::Ours(d, bus) => {
                let bus = bus.clone();
                d.drive(move |mut subs| async move {
                    let start = Instant::now();
                    let mut left = n;
                    while left > 0 {
                        let k = left.min(FANOUT_ROUND);
                        let tasks: Vec<_> = subs
                            .into_iter()
                            .map(|s| tokio::spawn(ours::receive_events(s, k)))
                            .collect();
                        for i in 0..k {
                            bus.publish(msgs::EVENT_TYPE, Some("web"), msgs::event_data(i));
                            if i % 64 == 63 {
                                tokio::task::yield_now().await;
                            }
                        }
                        subs = Vec::with_capacity(tasks.len());
                        for t in tasks {
                            subs.push(t.await.expect("subscriber"));
                        }
                        left -= k;
                    }
                    (subs, start.elapsed())
                })
            }
            Fanout::Framed(d, tx) => baseline_fanout_run(d, tx, n),
            Fanout::Interprocess(d, tx) => baseline_fanout_run(d, tx, n),
        }
    }
}

fn baseline_fanout_run<T: baseline::Transport>(
    d: &mut Driven<Vec<baseline::Subscriber<T>>>,
    tx: &broadcast::Sender<Bytes>,
    n: u64,
) -> Duration {
    let tx = tx.clone();
    d.drive(move |mut subs| async move {
        let start = Instant::now();
        let mut left = n;
        while left > 0 {
            let k = left.min(FANOUT_ROUND);
            let tasks: Vec<_> = subs.into_iter().map(|s| tokio::spawn(s.receive(k))).collect();
            for i in 0..k {
                tx.send(baseline::to_bytes(&event(i))).expect("subscribers");
                if i % 64 == 63 {
                    tokio::task::yield_now().await;
                }
            }
            subs = Vec::with_capacity(tasks.len());
            for t in tasks {
                subs.push(t.await.expect("subscriber"));
            }
            left -= k;
        }
        (subs, start.elapsed())
    })
}
