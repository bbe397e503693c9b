//! Footprint and scale of many connections, each side in its own process (so each has its own
//! descriptor limit, and heap counts are not mixed):
//!
//! * `memory`: heap per connection, counted by a counting global allocator, at 1,000 and 10,000
//!   connections, on the server side (this process) and the client side (a child), idle and
//!   again after one 1 MiB message each way on every connection; and what a connection is made
//!   of (`sizes`);
//! * `load`: 10,000 concurrent connections (clients here) to a server in a child process, each
//!   doing 10 requests; successes, failures and latency percentiles.
//!
//! `cargo bench -p bunctl-ipc --bench connections [-- memory|load] [-- --quick]`
//!
//! Output is tab-separated like the `report` bench: `group case implementation metric value`.

#[cfg(unix)]
mod common;

#[cfg(unix)]
#[path = "../crates/bunctl-ipc/tests/common/alloc.rs"]
mod alloc;

#[cfg(unix)]
fn main() {
    imp::main();
}

#[cfg(not(unix))]
fn main() {}

#[cfg(unix)]
mod imp {
    use std::future::Future;
    use std::mem::{size_of, size_of_val};
    use std::path::PathBuf;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use bunctl_ipc::{Connection, EventBus, IpcClient, IpcConnection, IpcMessage, IpcResponse};
    use bunctl_ipc::{IpcServer, serve_connection};
    use futures::{SinkExt, StreamExt};
    use tokio::net::UnixStream;
    use tokio_util::codec::{Framed, LengthDelimitedCodec};

    use crate::alloc::heap;
    use crate::common::baseline::{self, Interprocess, Tokio, Transport};
    use crate::common::{Client, Peer, Res, Sides, emit, histogram, msgs, ours};
    use crate::common::{raise_nofile, runtime, say};

    const MIB: usize = 1 << 20;
    /// Connections exchanging their 1 MiB messages at the same time.
    const WAVE: usize = 32;

    pub fn main() {
        let nofile = raise_nofile();
        let args = crate::common::args();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        match args.as_slice() {
            ["client", "ours", path, n] => client::<IpcClient>(path, n.parse().expect("n")),
            ["client", "framed", path, n] => client::<Whole<Tokio>>(path, n.parse().expect("n")),
            ["client", _, path, n] => client::<Whole<Interprocess>>(path, n.parse().expect("n")),
            _ if !crate::common::benchmarking() => {}
            _ => {
                let quick = args.contains(&"--quick");
                let all = !args.contains(&"memory") && !args.contains(&"load");
                if nofile < 10_100 {
                    eprintln!("RLIMIT_NOFILE is {nofile}: 10,000 connections need more");
                }
                if all || args.contains(&"memory") {
                    breakdown();
                    for n in [1_000, 10_000] {
                        memory(n, quick);
                    }
                }
                if all || args.contains(&"load") {
                    load(10_000, 10);
                }
            }
        }
    }

    /// What a connection is made of: inline sizes, and the heap that tokio allocates per socket
    /// and per timer (bytes).
    fn breakdown() {
        let rt = runtime(true, false);
        let _context = rt.enter();
        // Warm up the runtime's lazily allocated parts first.
        drop((UnixStream::pair(), Box::pin(tokio::time::sleep(Duration::from_secs(1)))));
        let b = heap();
        let (x, y) = UnixStream::pair().expect("pair");
        let socket = (heap() - b) / 2;
        let b = heap();
        let sleep = Box::pin(tokio::time::sleep(Duration::from_secs(1)));
        let timer = heap() - b;
        drop(sleep);
        let bus = EventBus::new();
        let handler = |request: IpcMessage| async move { msgs::reply_to(&request) };
        let serve = serve_connection(Connection::new(x), &bus, &handler);
        let looped = ours::recv_send::<UnixStream>(Connection::new(y));
        for (case, what, bytes) in [
            ("inline", "IpcConnection", size_of::<IpcConnection>()),
            ("inline", "IpcClient", size_of::<IpcClient>()),
            (
                "inline",
                "Framed<UnixStream,LengthDelimitedCodec>",
                size_of::<Framed<UnixStream, LengthDelimitedCodec>>(),
            ),
            ("inline", "tokio::time::Sleep", size_of::<tokio::time::Sleep>()),
            ("heap", "tokio socket registration", socket),
            ("heap", "Box<Sleep> (per waiting direction)", timer),
            ("inline", "serve_connection future", size_of_val(&serve)),
            ("inline", "recv/send loop future", size_of_val(&looped)),
        ] {
            emit("sizes", case, what, "bytes", bytes as f64);
        }
    }

    /// The server side of a heap measurement, and what it holds per connection.
    trait Held: Sized + Send + 'static {
        type Listener;
        /// Binds `path`; for connections held by a server's own tasks, starts `imp`'s server.
        fn bind(path: PathBuf, imp: &'static str) -> impl Future<Output = Self::Listener>;
        fn accept(listener: &mut Self::Listener) -> impl Future<Output = Self>;
        /// Answers one request (the 1 MiB exchange).
        fn answer(self) -> impl Future<Output = Self> + Send;
    }

    impl Held for IpcConnection {
        type Listener = IpcServer;

        async fn bind(path: PathBuf, _: &'static str) -> IpcServer {
            IpcServer::bind_with(path, ours::options()).await.expect("bind")
        }

        async fn accept(server: &mut IpcServer) -> Self {
            server.accept().await.expect("accept")
        }

        async fn answer(mut self) -> Self {
            let request = self.recv().await.expect("request");
            self.send(&msgs::reply_to(&request)).await.expect("reply");
            self
        }
    }

    /// A baseline connection as one `Framed` with the length-delimited codec (not split).
    struct Whole<T: Transport>(Framed<T::Stream, LengthDelimitedCodec>);

    impl<T: Transport> Held for Whole<T> {
        type Listener = T::Listener;

        async fn bind(path: PathBuf, _: &'static str) -> T::Listener {
            T::bind(&path)
        }

        async fn accept(listener: &mut T::Listener) -> Self {
            Whole(Framed::new(T::accept(listener).await, baseline::codec()))
        }

        async fn answer(mut self) -> Self {
            let frame = self.0.next().await.expect("request").expect("frame");
            let request: IpcMessage = serde_json::from_slice(&frame).expect("json");
            self.0.send(baseline::to_bytes(&msgs::reply_to(&request))).await.expect("reply");
            self
        }
    }

    impl<T: Transport> Client for Whole<T> {
        async fn connect(path: PathBuf) -> Res<Self> {
            Ok(Whole(Framed::new(T::connect(path).await?, baseline::codec())))
        }

        async fn request(&mut self, request: &IpcMessage) -> Res {
            self.0.send(baseline::to_bytes(request)).await?;
            let _: IpcResponse = serde_json::from_slice(&self.0.next().await.ok_or("closed")??)?;
            Ok(())
        }
    }

    /// Connections held by the tasks of `imp`'s server: `recv`/`send` loops, or `serve()`.
    struct Tasks;

    impl Held for Tasks {
        type Listener = ();

        async fn bind(path: PathBuf, imp: &'static str) {
            let (ready, bound) = std::sync::mpsc::sync_channel(1);
            tokio::spawn(crate::common::server(imp, path, ready));
            bound.recv().expect("bound");
        }

        async fn accept(_: &mut ()) -> Self {
            Tasks
        }

        async fn answer(self) -> Self {
            self
        }
    }

    /// Heap per connection since `before`, in bytes.
    fn per_conn(before: usize, n: usize) -> f64 {
        (heap() as f64 - before as f64) / n as f64
    }

    fn memory(n: usize, quick: bool) {
        for label in ["ours-conn", "ours-task", "ours-serve", "framed", "interprocess"] {
            match label {
                _ if quick && n > 1_000 && !matches!(label, "ours-serve" | "framed") => {}
                "ours-conn" => held::<IpcConnection>(label, n),
                "ours-task" => held::<Tasks>("ours", n),
                "framed" => held::<Whole<Tokio>>(label, n),
                "interprocess" => held::<Whole<Interprocess>>(label, n),
                _ => held::<Tasks>(label, n),
            }
        }
    }

    /// The heap per connection of `H` (`imp`'s server) here and of its client in a child process: idle, and after a 1 MiB request and reply on every connection.
    fn held<H: Held>(imp: &'static str, n: usize) {
        let rt = runtime(true, false);
        let dir = tempfile::Builder::new().prefix("bunctl-mem-").tempdir().expect("tempdir");
        let path = dir.path().join("mem.sock");
        // Bound first: the listener is not part of the per-connection figure.
        let mut listener = rt.block_on(H::bind(path.clone(), imp));
        let before = heap();
        let label = if imp == "ours" { "ours-task" } else { imp };
        let client = if imp.starts_with("ours") { "ours" } else { imp };
        let mut peer =
            Peer::spawn(&["client", client, path.to_str().expect("utf-8"), &n.to_string()]);
        let held: Vec<H> = rt.block_on(async {
            let mut held = Vec::with_capacity(n);
            for _ in 0..n {
                held.push(H::accept(&mut listener).await);
            }
            held
        });
        peer.expect("connected");
        let measure = |metric: &str, peer: &mut Peer| {
            std::thread::sleep(Duration::from_millis(300));
            emit("memory", &n.to_string(), &format!("{label}/server"), metric, per_conn(before, n));
            peer.tell("measure");
            let v: f64 = peer.expect("heap").parse().expect("number");
            // The client side of the three kinds that differ on the server only is reported once.
            if !matches!(label, "ours-conn" | "ours-task") {
                emit("memory", &n.to_string(), &format!("{client}/client"), metric, v);
            }
        };
        measure("idle", &mut peer);
        // Keeping 1 MiB in every connection's buffers would need n GiB; the baselines do, so
        // their exchange is measured at 1,000 connections only.
        if n <= 1_000 || client == "ours" {
            let answered = rt.spawn(futures::future::join_all(held.into_iter().map(H::answer)));
            peer.tell("exchange");
            peer.expect("exchanged");
            let held = rt.block_on(answered).expect("answers");
            measure("after-1MiB", &mut peer);
            drop(held);
        }
    }

    /// The client process of [`held`]: `n` connections, then one line per command.
    fn client<C: Client>(path: &str, n: usize) {
        let rt = runtime(true, false);
        let before = heap();
        let mut clients = rt.block_on(async {
            let mut clients = Vec::with_capacity(n);
            for _ in 0..n {
                clients.push(C::connect(path.into()).await.expect("connect"));
            }
            clients
        });
        say("connected", "");
        for line in std::io::stdin().lines() {
            match line.expect("stdin").as_str() {
                "measure" => {
                    std::thread::sleep(Duration::from_millis(100));
                    say("heap", per_conn(before, n));
                }
                "exchange" => {
                    clients = rt.block_on(exchange(clients));
                    say("exchanged", "");
                }
                _ => break,
            }
        }
    }

    /// One 1 MiB request answered with 1 MiB on every client, `WAVE` at a time, in order.
    async fn exchange<C: Client>(clients: Vec<C>) -> Vec<C> {
        let request = msgs::echo(MIB);
        let exchange = |mut c: C| async { c.request(&request).await.map(|()| c).expect("request") };
        futures::stream::iter(clients).map(exchange).buffered(WAVE).collect().await
    }

    /// `n` connections opened at once to a server in a child process; once all are open, each
    /// does `requests` requests in a row.
    fn load(n: usize, requests: usize) {
        for (label, imp) in
            [("ours-serve", "ours-serve"), ("ours-task", "ours"), ("framed", "framed")]
        {
            let sides = Sides::serving("procs", imp);
            let (path, start) = (sides.path(), Instant::now());
            let (ok, failed, lat) = match imp {
                "framed" => sides.run(load_clients::<baseline::Client<Tokio>>(path, n, requests)),
                _ => sides.run(load_clients::<IpcClient>(path, n, requests)),
            };
            let (secs, h) = (start.elapsed().as_secs_f64(), histogram(lat));
            for (metric, v) in [
                ("requests-ok", ok as f64),
                ("connections-failed", failed as f64),
                ("p50-us", h.value_at_quantile(0.5) as f64),
                ("p99-us", h.value_at_quantile(0.99) as f64),
                ("max-us", h.max() as f64),
                ("seconds", secs),
            ] {
                emit("load", &format!("{n}x{requests}"), label, metric, v);
            }
        }
    }

    /// The clients of [`load`]: requests that succeeded, connections that failed, latencies (µs).
    async fn load_clients<C: Client>(
        path: PathBuf,
        n: usize,
        requests: usize,
    ) -> (usize, usize, Vec<u64>) {
        let barrier = Arc::new(tokio::sync::Barrier::new(n));
        let tasks: Vec<_> = (0..n)
            .map(|_| {
                let (path, barrier) = (path.clone(), Arc::clone(&barrier));
                tokio::spawn(async move {
                    let client = C::connect(path).await;
                    barrier.wait().await;
                    let (mut client, mut lat) = (client?, Vec::with_capacity(requests));
                    for _ in 0..requests {
                        let t = Instant::now();
                        client.request(&msgs::small_request()).await?;
                        lat.push(t.elapsed().as_micros() as u64);
                    }
                    Res::Ok(lat)
                })
            })
            .collect();
        let (mut lat, mut failed) = (Vec::new(), 0);
        for t in tasks {
            t.await.expect("task").map(|l| lat.extend(l)).unwrap_or_else(|e| {
                eprintln!("failed: {e}");
                failed += 1;
            });
        }
        (lat.len(), failed, lat)
    }
}
