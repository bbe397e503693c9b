//! Many connections, each side in its own process: `memory` (heap per connection, and what a
//! connection is made of) and `load` (10,000 connections, 10 requests each, at once).

#[cfg(unix)]
mod common;

#[cfg(unix)]
#[path = "../tests/common/alloc.rs"]
mod alloc;

#[cfg(unix)]
fn main() {
    imp::main();
}

#[cfg(not(unix))]
fn main() {}

#[cfg(unix)]
mod imp {
    use crate::alloc::heap;
    use crate::common::baseline::{self, Interprocess, Tokio, Transport};
    use crate::common::{Client, Peer, Res, Sides, emit, histogram, msgs, ours, runtime};
    use bunctl_ipc::{Connection, EventBus, IpcClient, IpcConnection, IpcMessage, IpcServer};
    use futures::{SinkExt, StreamExt};
    use std::future::Future;
    use std::mem::{size_of, size_of_val};
    use std::path::PathBuf;
    use std::sync::Arc;
    use std::time::{Duration, Instant};
    use tokio::net::UnixStream;
    use tokio_util::codec::{Framed, LengthDelimitedCodec};

    pub fn main() {
        let (args, benchmarking) = crate::common::args();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        match args[..] {
            ["client", "ours", path, n] => client::<IpcClient>(path, n.parse().expect("n")),
            ["client", "framed", path, n] => client::<Whole<Tokio>>(path, n.parse().expect("n")),
            ["client", _, path, n] => client::<Whole<Interprocess>>(path, n.parse().expect("n")),
            _ => {
                let all = !args.contains(&"memory") && !args.contains(&"load");
                let wanted = |group| benchmarking && (all || args.contains(&group));
                if wanted("memory") {
                    breakdown();
                    [1_000, 10_000].into_iter().for_each(memory);
                }
                if wanted("load") {
                    load(10_000, 10);
                }
            }
        }
    }

    /// Inline sizes, and the heap tokio allocates per socket and per timer (bytes).
    fn breakdown() {
        let rt = runtime(false, false);
        let _context = rt.enter();
        // Warm up the runtime's lazily allocated parts first.
        drop((UnixStream::pair(), Box::pin(tokio::time::sleep(Duration::from_secs(1)))));
        let b = heap();
        let (x, y) = UnixStream::pair().expect("pair");
        let socket = (heap() - b) / 2;
        let b = heap();
        let _sleep = Box::pin(tokio::time::sleep(Duration::from_secs(1)));
        let timer = heap() - b;
        let (bus, handler) = (EventBus::new(), |r: IpcMessage| async move { msgs::reply_to(&r) });
        let serve = bunctl_ipc::serve_connection(Connection::new(x), &bus, &handler);
        let looped = ours::recv_send(Connection::new(y));
        let framed = "Framed<UnixStream,LengthDelimitedCodec>";
        for (case, what, bytes) in [
            ("inline", "IpcConnection", size_of::<IpcConnection>()),
            ("inline", "IpcClient", size_of::<IpcClient>()),
            ("inline", framed, size_of::<Framed<UnixStream, LengthDelimitedCodec>>()),
            ("inline", "tokio::time::Sleep", size_of::<tokio::time::Sleep>()),
            ("heap", "tokio socket registration", socket),
            ("heap", "Box<Sleep> (per waiting direction)", timer),
            ("inline", "serve_connection future", size_of_val(&serve)),
            ("inline", "recv/send loop future", size_of_val(&looped)),
        ] {
            emit("sizes", case, what, "bytes", bytes as f64);
        }
    }

    /// What the server of a heap measurement holds per connection.
    trait Held: Sized + Send + 'static {
        type Listener;
        /// For connections held by a server's tasks, starts `imp`'s server.
        fn bind(path: PathBuf, imp: &'static str) -> impl Future<Output = Self::Listener>;
        fn accept(listener: &mut Self::Listener) -> impl Future<Output = Self>;
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
            self.send(&msgs::reply_to(&request)).await.map(|()| self).expect("reply")
        }
    }

    /// A baseline connection as one (not split) `Framed`.
    struct Whole<T: Transport>(Framed<T::Stream, LengthDelimitedCodec>);

    impl<T: Transport> Held for Whole<T> {
        type Listener = T::Listener;
        async fn bind(path: PathBuf, _: &'static str) -> T::Listener {
            T::bind(&path)
        }
        async fn accept(listener: &mut T::Listener) -> Self {
            Whole(Framed::new(T::accept(listener).await, msgs::codec()))
        }
        async fn answer(mut self) -> Self {
            let frame = self.0.next().await.expect("request").expect("frame");
            let request: IpcMessage = serde_json::from_slice(&frame).expect("json");
            let reply = msgs::to_bytes(&msgs::reply_to(&request));
            self.0.send(reply).await.map(|()| self).expect("reply")
        }
    }

    impl<T: Transport> Client for Whole<T> {
        async fn connect(path: PathBuf) -> Res<Self> {
            Ok(Whole(Framed::new(T::connect(path).await?, msgs::codec())))
        }
        async fn request(&mut self, request: &IpcMessage) -> Res<bunctl_ipc::IpcResponse> {
            self.0.send(msgs::to_bytes(request)).await?;
            let reply = self.0.next().await.ok_or("closed")??;
            Ok(serde_json::from_slice(&reply)?)
        }
    }

    /// Connections held by the tasks of a server: `recv`/`send` loops, or `serve()`.
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

    fn per_conn(before: usize, n: usize) -> f64 {
        (heap() as f64 - before as f64) / n as f64
    }

    fn memory(n: usize) {
        for label in ["ours", "ours-task", "ours-serve", "framed", "interprocess"] {
            match label {
                "ours" => held::<IpcConnection>(label, label, n),
                "ours-task" => held::<Tasks>(label, "ours", n),
                "ours-serve" => held::<Tasks>(label, label, n),
                "framed" => held::<Whole<Tokio>>(label, label, n),
                _ => held::<Whole<Interprocess>>(label, label, n),
            }
        }
    }

    /// Heap per connection of `H` (`imp`'s server) here and of its clients in a child process,
    /// idle and after a 1 MiB request and reply on every connection.
    fn held<H: Held>(label: &str, imp: &'static str, n: usize) {
        let rt = runtime(true, false);
        let dir = tempfile::Builder::new().prefix("bunctl-mem-").tempdir().expect("tempdir");
        let path = dir.path().join("mem.sock");
        // Bound first: the listener is not part of the per-connection figure.
        let mut listener = rt.block_on(H::bind(path.clone(), imp));
        let before = heap();
        let client = if imp.starts_with("ours") { "ours" } else { imp };
        let socket = path.to_str().expect("utf-8");
        let mut peer = Peer::spawn(&["client", client, socket, &n.to_string()]);
        let mut held = Vec::with_capacity(n);
        rt.block_on(async {
            for _ in 0..n {
                held.push(H::accept(&mut listener).await);
            }
        });
        peer.expect("connected");
        let measure = |metric: &str, peer: &mut Peer| {
            std::thread::sleep(Duration::from_millis(300));
            emit("memory", &n.to_string(), &format!("{label}/server"), metric, per_conn(before, n));
            peer.tell("measure");
            let v: f64 = peer.expect("heap").parse().expect("number");
            // The client of the kinds that differ on the server only is reported once.
            if !matches!(label, "ours" | "ours-task") {
                emit("memory", &n.to_string(), &format!("{client}/client"), metric, v);
            }
        };
        measure("idle", &mut peer);
        // Keeping 1 MiB in every connection's buffers would need n GiB; the baselines do, so
        // their exchange is measured at 1,000 connections only.
        if n <= 1_000 || client == "ours" {
            // Answered each by a task, back into a `Vec` of the same capacity.
            let answered = rt.spawn(async move {
                let tasks: Vec<_> = held.into_iter().map(|h| tokio::spawn(h.answer())).collect();
                let mut held = Vec::with_capacity(n);
                for task in tasks {
                    held.push(task.await.expect("answer"));
                }
                held
            });
            peer.tell("exchange");
            peer.expect("exchanged");
            let held = rt.block_on(answered).expect("answers");
            measure("after-1MiB", &mut peer);
            drop(held);
        }
    }

    fn client<C: Client>(path: &str, n: usize) {
        let (rt, before) = (runtime(true, false), heap());
        let mut clients = Vec::with_capacity(n);
        rt.block_on(async {
            for _ in 0..n {
                clients.push(C::connect(path.into()).await.expect("connect"));
            }
        });
        println!("connected");
        for line in std::io::stdin().lines() {
            match line.expect("stdin").as_str() {
                "measure" => {
                    std::thread::sleep(Duration::from_millis(100));
                    println!("heap {}", per_conn(before, n));
                }
                "exchange" => {
                    // 32 connections at a time, back into a `Vec` of the same capacity.
                    let request = msgs::echo(1 << 20);
                    let one =
                        |mut c: C| async { c.request(&request).await.map(|_| c).expect("request") };
                    let exchanged = futures::stream::iter(clients).map(one).buffered(32);
                    let keep = |mut v: Vec<C>, c| async move {
                        v.push(c);
                        v
                    };
                    clients = rt.block_on(exchanged.fold(Vec::with_capacity(n), keep));
                    println!("exchanged");
                }
                _ => break,
            }
        }
    }

    /// `n` connections to a server in a child process, then `requests` requests on each.
    fn load(n: usize, requests: usize) {
        for imp in ["ours-serve", "ours", "framed"] {
            let sides = Sides::serving("procs", imp);
            let (path, start) = (sides.path(), Instant::now());
            let (failed, lat) = match imp {
                "framed" => sides.run(load_clients::<baseline::Client<Tokio>>(path, n, requests)),
                _ => sides.run(load_clients::<IpcClient>(path, n, requests)),
            };
            let (secs, ok, h) = (start.elapsed().as_secs_f64(), lat.len(), histogram(lat));
            for (metric, v) in [
                ("requests-ok", ok as f64),
                ("connections-failed", failed as f64),
                ("p50-us", h.value_at_quantile(0.5) as f64),
                ("p99-us", h.value_at_quantile(0.99) as f64),
                ("max-us", h.max() as f64),
                ("seconds", secs),
            ] {
                emit("load", &format!("{n}x{requests}"), imp, metric, v);
            }
        }
    }

    /// The failed connections, and the latencies (µs) of the requests that succeeded.
    async fn load_clients<C: Client>(path: PathBuf, n: usize, k: usize) -> (usize, Vec<u64>) {
        let barrier = Arc::new(tokio::sync::Barrier::new(n));
        let tasks: Vec<_> = (0..n)
            .map(|_| {
                let (path, barrier) = (path.clone(), Arc::clone(&barrier));
                tokio::spawn(async move {
                    let client = C::connect(path).await;
                    barrier.wait().await;
                    let (mut client, mut lat) = (client?, Vec::with_capacity(k));
                    for _ in 0..k {
                        let t = Instant::now();
                        client.request(&msgs::small_request()).await?;
                        lat.push(t.elapsed().as_micros() as u64);
                    }
                    Res::Ok(lat)
                })
            })
            .collect();
        let results = futures::future::try_join_all(tasks).await.expect("task");
        let failed: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).collect();
        failed.iter().for_each(|e| eprintln!("failed: {e}"));
        (failed.len(), results.iter().flatten().flatten().copied().collect())
    }
}
