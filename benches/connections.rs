//! Footprint and scale of many connections, each side in its own process (so each has its own
//! descriptor limit, and heap counts are not mixed):
//!
//! * `memory`: heap per idle connection, counted by a counting global allocator, at 1,000 and
//!   10,000 connections, on the server side and on the client side, idle and again after one
//!   1 MiB message each way on every connection;
//! * `load`: 10,000 concurrent connections to the reference daemon path (`serve`), each doing
//!   10 requests; successes, failures and latency percentiles.
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
    use std::io::{BufRead, BufReader, Write};
    use std::path::{Path, PathBuf};
    use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use bunctl_ipc::{
        ClientOptions, EventBus, IpcClient, IpcConnection, IpcMessage, IpcResponse, IpcServer,
        ServerOptions, serve,
    };
    use futures::{SinkExt, StreamExt};
    use tokio::net::UnixStream;
    use tokio::runtime::Runtime;
    use tokio_util::codec::{Framed, LengthDelimitedCodec};

    use crate::alloc::heap;
    use crate::common::baseline::{self, Interprocess, Tokio, Transport};
    use crate::common::msgs;

    /// A baseline connection: `Framed` with the length-delimited codec.
    type Ldc<S> = Framed<S, LengthDelimitedCodec>;
    type IpStream = interprocess::local_socket::tokio::Stream;

    /// Heap per connection since `before`, in bytes.
    fn per_conn(before: usize, n: usize) -> f64 {
        (heap() as f64 - before as f64) / n as f64
    }

    const MIB: usize = 1 << 20;
    /// Connections exchanging their 1 MiB messages at the same time.
    const WAVE: usize = 32;

    fn emit(group: &str, case: &str, imp: &str, metric: &str, value: f64) {
        println!("{group}\t{case}\t{imp}\t{metric}\t{value:.1}");
    }

    /// Raises the soft descriptor limit to the hard one; returns the new soft limit.
    fn raise_nofile() -> u64 {
        let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: plain libc calls with a valid pointer.
        unsafe {
            libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
            libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        }
        lim.rlim_cur
    }

    fn runtime() -> Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime")
    }

    pub fn main() {
        let nofile = raise_nofile();
        let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        match args.as_slice() {
            ["client", "memory", kind, path, n] => {
                client_memory(kind, Path::new(path), n.parse().expect("n"))
            }
            ["sizes"] => breakdown(),
            ["client", "load", kind, path, n, requests] => client_load(
                kind,
                Path::new(path),
                n.parse().expect("n"),
                requests.parse().expect("requests"),
            ),
            _ => {
                if !std::env::args().any(|a| a == "--bench") {
                    return; // `cargo test --all-targets`: nothing to do.
                }
                let quick = args.contains(&"--quick");
                let all = !args.contains(&"memory") && !args.contains(&"load");
                let sizes: &[usize] = &[1_000, 10_000];
                let max = sizes.iter().copied().max().unwrap_or(0);
                if (nofile as usize) < max + 100 {
                    eprintln!("RLIMIT_NOFILE is {nofile}: {max} connections need more");
                }
                if all || args.contains(&"memory") {
                    breakdown();
                    for &n in sizes {
                        memory(n, quick);
                    }
                }
                if all || args.contains(&"load") {
                    load(10_000, 10);
                }
            }
        }
    }

    // ---------------------------------------------------------------------------------------
    // memory

    /// What a connection is made of: inline sizes, and heap that tokio allocates per socket and
    /// per timer (`sizes` group; bytes).
    fn breakdown() {
        use bunctl_ipc::Connection;
        let inline =
            |what: &str, bytes: usize| emit("sizes", "inline", what, "bytes", bytes as f64);
        inline("IpcConnection", std::mem::size_of::<IpcConnection>());
        inline("IpcClient", std::mem::size_of::<IpcClient>());
        inline("Framed<UnixStream,LengthDelimitedCodec>", std::mem::size_of::<Ldc<UnixStream>>());
        inline("tokio::time::Sleep", std::mem::size_of::<tokio::time::Sleep>());
        let rt = runtime();
        rt.block_on(async {
            // Warm up the runtime's lazily allocated parts first.
            drop(UnixStream::pair().expect("pair"));
            drop(Box::pin(tokio::time::sleep(Duration::from_secs(1))));
            let b = heap();
            let pair = UnixStream::pair().expect("pair");
            emit("sizes", "heap", "tokio socket registration", "bytes", (heap() - b) as f64 / 2.0);
            let b = heap();
            let sleep = Box::pin(tokio::time::sleep(Duration::from_secs(1)));
            emit(
                "sizes",
                "heap",
                "Box<Sleep> (per waiting direction)",
                "bytes",
                (heap() - b) as f64,
            );
            drop(sleep);

            let (a, b) = pair;
            let conn: Connection<_, IpcMessage, IpcResponse> = Connection::new(a);
            let bus = EventBus::new();
            let handler = |request: IpcMessage| async move { reply_to(&request) };
            let fut = bunctl_ipc::serve_connection(conn, &bus, &handler);
            inline("serve_connection future", std::mem::size_of_val(&fut));
            drop(fut);
            let mut conn: Connection<_, IpcMessage, IpcResponse> = Connection::new(b);
            let fut = async move {
                while let Ok(request) = conn.recv().await {
                    if conn.send(&reply_to(&request)).await.is_err() {
                        break;
                    }
                }
            };
            inline("recv/send loop future", std::mem::size_of_val(&fut));
        });
    }

    /// The server side under test.
    #[derive(Clone, Copy, PartialEq, Eq, Debug)]
    enum ServerKind {
        /// `IpcConnection`s held in a `Vec`: the connection alone.
        OursConn,
        /// A task per connection looping on `recv`/`send`, as in the crate's README.
        OursTask,
        /// `serve()`: the reference daemon's accept loop and `serve_connection` tasks.
        OursServe,
        /// `Framed<UnixStream, LengthDelimitedCodec>`s in a `Vec`.
        Framed,
        /// `Framed` over `interprocess` streams in a `Vec`.
        Interprocess,
    }

    impl ServerKind {
        fn label(self) -> &'static str {
            match self {
                ServerKind::OursConn => "ours-conn",
                ServerKind::OursTask => "ours-task",
                ServerKind::OursServe => "ours-serve",
                ServerKind::Framed => "framed",
                ServerKind::Interprocess => "interprocess",
            }
        }

        fn client(self) -> &'static str {
            match self {
                ServerKind::Framed => "framed",
                ServerKind::Interprocess => "interprocess",
                _ => "ours",
            }
        }
    }

    /// The child process running the client side, driven line by line.
    struct Peer {
        child: Child,
        stdin: ChildStdin,
        stdout: BufReader<ChildStdout>,
    }

    impl Peer {
        fn spawn(args: &[&str]) -> Peer {
            let exe = std::env::current_exe().expect("exe");
            let mut child = Command::new(exe)
                .args(args)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .expect("spawn client process");
            let stdin = child.stdin.take().expect("stdin");
            let stdout = BufReader::new(child.stdout.take().expect("stdout"));
            Peer { child, stdin, stdout }
        }

        /// Reads the next line (`key value`).
        fn line(&mut self) -> (String, String) {
            let mut line = String::new();
            self.stdout.read_line(&mut line).expect("read from client process");
            let line = line.trim();
            assert!(!line.is_empty(), "client process ended early");
            let (k, v) = line.split_once(' ').unwrap_or((line, ""));
            (k.to_string(), v.to_string())
        }

        fn expect(&mut self, key: &str) -> String {
            let (k, v) = self.line();
            assert_eq!(k, key, "client process said {k} {v}");
            v
        }

        fn tell(&mut self, command: &str) {
            writeln!(self.stdin, "{command}").expect("write to client process");
            self.stdin.flush().expect("flush");
        }

        fn finish(mut self) {
            self.tell("quit");
            let _ = self.child.wait();
        }
    }

    fn server_options(n: usize) -> ServerOptions {
        // Long enough that no idle connection is closed while it is measured.
        ServerOptions::new().max_connections(n + 16).timeout(Duration::from_secs(3600))
    }

    /// What the server holds between the measurements.
    enum Held {
        Ours(Vec<IpcConnection>),
        Framed(Vec<Ldc<UnixStream>>),
        Interprocess(Vec<Ldc<IpStream>>),
        /// Tasks own the connections.
        Tasks,
    }

    fn reply_to(request: &IpcMessage) -> IpcResponse {
        match request {
            IpcMessage::Start { .. } => msgs::big_reply(MIB),
            _ => msgs::small_reply(),
        }
    }

    fn memory(n: usize, quick: bool) {
        let kinds: &[ServerKind] = if quick && n > 1_000 {
            &[ServerKind::OursServe, ServerKind::Framed]
        } else {
            &[
                ServerKind::OursConn,
                ServerKind::OursTask,
                ServerKind::OursServe,
                ServerKind::Framed,
                ServerKind::Interprocess,
            ]
        };
        for &kind in kinds {
            memory_one(kind, n);
        }
    }

    fn memory_one(kind: ServerKind, n: usize) {
        let rt = runtime();
        let dir = tempfile::Builder::new().prefix("bunctl-mem-").tempdir().expect("tempdir");
        let path = dir.path().join("mem.sock");
        let case = n.to_string();
        // Keeping 1 MiB in every connection's buffers would need n GiB; the baselines do, so
        // their exchange is measured at 1,000 connections only.
        let exchange = n <= 1_000 || !matches!(kind, ServerKind::Framed | ServerKind::Interprocess);

        // Bind first: the listener is not part of the per-connection figure.
        let listener = rt.block_on(async {
            match kind {
                ServerKind::Framed => Listener::Tokio(Tokio::bind(&path)),
                ServerKind::Interprocess => Listener::Ip(Interprocess::bind(&path)),
                _ => Listener::Ours(
                    IpcServer::bind_with(&path, server_options(n)).await.expect("bind"),
                ),
            }
        });
        let before = heap();
        let mut peer =
            Peer::spawn(&["client", "memory", kind.client(), path.to_str().expect("utf-8"), &case]);
        let held = rt.block_on(accept_all(kind, listener, n));
        peer.expect("connected");
        std::thread::sleep(Duration::from_millis(300));
        let server_idle = per_conn(before, n);
        peer.tell("measure");
        let client_idle: f64 = peer.expect("heap").parse().expect("number");

        let (server_after, client_after) = if exchange {
            let exchanged = exchange_server(&rt, held, n);
            peer.tell("exchange");
            peer.expect("exchanged");
            let held = rt.block_on(exchanged).expect("exchange tasks");
            std::thread::sleep(Duration::from_millis(300));
            let server_after = per_conn(before, n);
            if std::env::var_os("MEM_DEBUG").is_some() {
                std::thread::sleep(Duration::from_secs(2));
                eprintln!("after 2s more: {:.1}", per_conn(before, n));
            }
            peer.tell("measure");
            let client_after: f64 = peer.expect("heap").parse().expect("number");
            drop(held);
            (Some(server_after), Some(client_after))
        } else {
            (None, None)
        };
        peer.finish();

        let server_label = format!("{}/server", kind.label());
        emit("memory", &case, &server_label, "idle", server_idle);
        if let Some(v) = server_after {
            emit("memory", &case, &server_label, "after-1MiB", v);
        }
        if matches!(kind, ServerKind::OursServe | ServerKind::Framed | ServerKind::Interprocess) {
            let client_label = format!("{}/client", kind.client());
            emit("memory", &case, &client_label, "idle", client_idle);
            if let Some(v) = client_after {
                emit("memory", &case, &client_label, "after-1MiB", v);
            }
        }
        drop(rt);
    }

    enum Listener {
        Ours(IpcServer),
        Tokio(tokio::net::UnixListener),
        Ip(interprocess::local_socket::tokio::Listener),
    }

    async fn accept_all(kind: ServerKind, listener: Listener, n: usize) -> Held {
        match (kind, listener) {
            (ServerKind::OursConn, Listener::Ours(mut server)) => {
                let mut conns = Vec::with_capacity(n);
                for _ in 0..n {
                    conns.push(server.accept().await.expect("accept"));
                }
                // The listener stays open until the end, like a daemon's.
                std::mem::forget(server);
                Held::Ours(conns)
            }
            (ServerKind::OursTask, Listener::Ours(mut server)) => {
                for _ in 0..n {
                    let mut conn = server.accept().await.expect("accept");
                    tokio::spawn(async move {
                        while let Ok(request) = conn.recv().await {
                            if conn.send(&reply_to(&request)).await.is_err() {
                                break;
                            }
                        }
                    });
                }
                std::mem::forget(server);
                Held::Tasks
            }
            (ServerKind::OursServe, Listener::Ours(server)) => {
                let handler = |request: IpcMessage| async move { reply_to(&request) };
                tokio::spawn(serve(server, EventBus::new(), handler));
                Held::Tasks
            }
            (ServerKind::Framed, Listener::Tokio(l)) => {
                Held::Framed(accept_framed::<Tokio>(l, n).await)
            }
            (ServerKind::Interprocess, Listener::Ip(l)) => {
                Held::Interprocess(accept_framed::<Interprocess>(l, n).await)
            }
            (kind, _) => unreachable!("{kind:?}"),
        }
    }

    /// `n` baseline connections; the listener stays open until the end, like a daemon's.
    async fn accept_framed<T: Transport>(listener: T::Listener, n: usize) -> Vec<Ldc<T::Stream>> {
        let mut conns = Vec::with_capacity(n);
        for _ in 0..n {
            conns.push(Framed::new(T::accept(&listener).await, baseline::codec()));
        }
        std::mem::forget(listener);
        conns
    }

    /// Starts the server's part of the exchange: every held connection answers one 1 MiB
    /// `Start` with a 1 MiB reply, then comes back. Tasks (`ours-task`, `ours-serve`) answer
    /// on their own.
    fn exchange_server(rt: &Runtime, held: Held, n: usize) -> tokio::task::JoinHandle<Held> {
        rt.spawn(async move {
            match held {
                Held::Tasks => {
                    // Wait until the client has had its replies (it tells the parent).
                    Held::Tasks
                }
                Held::Ours(conns) => {
                    let tasks: Vec<_> = conns
                        .into_iter()
                        .map(|mut c| {
                            tokio::spawn(async move {
                                let request = c.recv().await.expect("request");
                                c.send(&reply_to(&request)).await.expect("reply");
                                c
                            })
                        })
                        .collect();
                    let mut conns = Vec::with_capacity(n);
                    for t in tasks {
                        conns.push(t.await.expect("task"));
                    }
                    Held::Ours(conns)
                }
                Held::Framed(conns) => Held::Framed(framed_exchange(conns, n).await),
                Held::Interprocess(conns) => Held::Interprocess(framed_exchange(conns, n).await),
            }
        })
    }

    async fn framed_exchange<S>(conns: Vec<Ldc<S>>, n: usize) -> Vec<Ldc<S>>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let tasks: Vec<_> = conns
            .into_iter()
            .map(|mut f| {
                tokio::spawn(async move {
                    let frame = f.next().await.expect("request").expect("frame");
                    let request: IpcMessage = serde_json::from_slice(&frame).expect("json");
                    f.send(baseline::to_bytes(&reply_to(&request))).await.expect("reply");
                    f
                })
            })
            .collect();
        let mut out = Vec::with_capacity(n);
        for t in tasks {
            out.push(t.await.expect("task"));
        }
        out
    }

    /// The client process of `memory`.
    fn client_memory(kind: &str, path: &Path, n: usize) {
        let rt = runtime();
        let before = heap();
        let mut clients = rt.block_on(Clients::connect(kind, path, n));
        let mut out = std::io::stdout();
        writeln!(out, "connected").expect("stdout");
        out.flush().expect("flush");
        for line in std::io::stdin().lines() {
            match line.expect("stdin").as_str() {
                "measure" => {
                    std::thread::sleep(Duration::from_millis(100));
                    writeln!(out, "heap {:.1}", per_conn(before, n)).expect("stdout");
                }
                "exchange" => {
                    clients = rt.block_on(clients.exchange());
                    writeln!(out, "exchanged").expect("stdout");
                }
                _ => break,
            }
            out.flush().expect("flush");
        }
        drop(clients);
    }

    enum Clients {
        Ours(Vec<IpcClient>),
        Framed(Vec<Ldc<UnixStream>>),
        Interprocess(Vec<Ldc<IpStream>>),
    }

    impl Clients {
        async fn connect(kind: &str, path: &Path, n: usize) -> Clients {
            match kind {
                "ours" => {
                    let options = ClientOptions::new().timeout(Duration::from_secs(3600));
                    let mut v = Vec::with_capacity(n);
                    for _ in 0..n {
                        v.push(IpcClient::connect_with(path, options).await.expect("connect"));
                    }
                    Clients::Ours(v)
                }
                "framed" => Clients::Framed(framed_clients::<Tokio>(path, n).await),
                "interprocess" => {
                    Clients::Interprocess(framed_clients::<Interprocess>(path, n).await)
                }
                other => panic!("unknown client {other}"),
            }
        }

        /// One 1 MiB `Start` and its 1 MiB reply on every connection, `WAVE` at a time.
        async fn exchange(self) -> Clients {
            let start = Arc::new(msgs::start(MIB));
            match self {
                Clients::Ours(v) => Clients::Ours(
                    waves(v, |mut c| {
                        let start = Arc::clone(&start);
                        async move {
                            let reply = c.request(&start).await.expect("request");
                            assert!(matches!(reply, IpcResponse::Data { .. }));
                            c
                        }
                    })
                    .await,
                ),
                Clients::Framed(v) => {
                    Clients::Framed(waves(v, |f| framed_request(f, Arc::clone(&start))).await)
                }
                Clients::Interprocess(v) => {
                    Clients::Interprocess(waves(v, |f| framed_request(f, Arc::clone(&start))).await)
                }
            }
        }
    }

    async fn framed_clients<T: Transport>(path: &Path, n: usize) -> Vec<Ldc<T::Stream>> {
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            v.push(Framed::new(T::connect(path.to_owned()).await, baseline::codec()));
        }
        v
    }

    async fn framed_request<S>(mut f: Ldc<S>, start: Arc<IpcMessage>) -> Ldc<S>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        f.send(baseline::to_bytes(&*start)).await.expect("send");
        let frame = f.next().await.expect("reply").expect("frame");
        let _: IpcResponse = serde_json::from_slice(&frame).expect("json");
        f
    }

    /// Runs `f` on every item, `WAVE` at a time, keeping the order.
    async fn waves<T, F, Fut>(items: Vec<T>, f: F) -> Vec<T>
    where
        T: Send + 'static,
        F: Fn(T) -> Fut,
        Fut: std::future::Future<Output = T> + Send + 'static,
    {
        let mut out = Vec::with_capacity(items.len());
        let mut items = items.into_iter();
        loop {
            let wave: Vec<_> = items.by_ref().take(WAVE).map(|t| tokio::spawn(f(t))).collect();
            if wave.is_empty() {
                break;
            }
            for t in wave {
                out.push(t.await.expect("task"));
            }
        }
        out
    }

    // ---------------------------------------------------------------------------------------
    // load

    fn load(n: usize, requests: usize) {
        for kind in ["ours-serve", "ours-task", "framed"] {
            let rt = runtime();
            let dir = tempfile::Builder::new().prefix("bunctl-load-").tempdir().expect("tempdir");
            let path = dir.path().join("load.sock");
            let p = path.clone();
            rt.block_on(async move {
                match kind {
                    "ours-serve" => {
                        let server =
                            IpcServer::bind_with(&p, server_options(n)).await.expect("bind");
                        let handler = |request: IpcMessage| async move { reply_to(&request) };
                        tokio::spawn(serve(server, EventBus::new(), handler));
                    }
                    "ours-task" => {
                        let mut server =
                            IpcServer::bind_with(&p, server_options(n)).await.expect("bind");
                        tokio::spawn(async move {
                            while let Ok(mut conn) = server.accept().await {
                                tokio::spawn(async move {
                                    while let Ok(request) = conn.recv().await {
                                        if conn.send(&reply_to(&request)).await.is_err() {
                                            break;
                                        }
                                    }
                                });
                            }
                        });
                    }
                    _ => {
                        let (tx, rx) = std::sync::mpsc::sync_channel(1);
                        tokio::spawn(baseline::server::<Tokio>(p, n, tx));
                        rx.recv().expect("ready");
                    }
                }
            });
            let client = if kind == "framed" { "framed" } else { "ours" };
            let mut peer = Peer::spawn(&[
                "client",
                "load",
                client,
                path.to_str().expect("utf-8"),
                &n.to_string(),
                &requests.to_string(),
            ]);
            let case = format!("{n}x{requests}");
            loop {
                let (k, v) = peer.line();
                if k == "done" {
                    break;
                }
                emit("load", &case, kind, &k, v.parse().expect("number"));
            }
            peer.finish();
            drop(rt);
        }
    }

    /// The client process of `load`: `n` connections opened at once; once all are open, each
    /// does `requests` requests in a row.
    fn client_load(kind: &str, path: &Path, n: usize, requests: usize) {
        let rt = runtime();
        let path: PathBuf = path.to_owned();
        let kind = kind.to_string();
        let (ok, failed, connect_failed, lat, elapsed) = rt.block_on(async move {
            let barrier = Arc::new(tokio::sync::Barrier::new(n));
            let start = Instant::now();
            let tasks: Vec<_> = (0..n)
                .map(|_| {
                    let (path, barrier, kind) = (path.clone(), Arc::clone(&barrier), kind.clone());
                    tokio::spawn(async move {
                        let mut lat = Vec::with_capacity(requests);
                        let request = msgs::small_request();
                        if kind == "framed" {
                            let mut c = baseline::Client::<Tokio>::connect(path).await;
                            barrier.wait().await;
                            for _ in 0..requests {
                                let t = Instant::now();
                                c.request(&request).await;
                                lat.push(t.elapsed().as_micros() as u32);
                            }
                            return (Ok(lat), 0);
                        }
                        let options = ClientOptions::new().timeout(Duration::from_secs(60));
                        let client = IpcClient::connect_with(&path, options).await;
                        barrier.wait().await;
                        let mut client = match client {
                            Ok(c) => c,
                            Err(e) => return (Err(e.to_string()), 1),
                        };
                        for _ in 0..requests {
                            let t = Instant::now();
                            if let Err(e) = client.request(&request).await {
                                return (Err(e.to_string()), 0);
                            }
                            lat.push(t.elapsed().as_micros() as u32);
                        }
                        (Ok(lat), 0)
                    })
                })
                .collect();
            let (mut ok, mut failed, mut connect_failed, mut all) =
                (0usize, 0usize, 0usize, Vec::new());
            for t in tasks {
                match t.await.expect("task") {
                    (Ok(lat), _) => {
                        ok += lat.len();
                        all.extend(lat);
                    }
                    (Err(e), c) => {
                        eprintln!("failed: {e}");
                        failed += 1;
                        connect_failed += c;
                    }
                }
            }
            (ok, failed, connect_failed, all, start.elapsed())
        });
        let mut h = hdrhistogram::Histogram::<u64>::new(3).expect("3 significant digits");
        lat.into_iter().for_each(|us| h.record(u64::from(us)).expect("auto-resizing"));
        let pct = |p: f64| h.value_at_quantile(p) as f64;
        let mut out = std::io::stdout();
        for (k, v) in [
            ("requests-ok", ok as f64),
            ("connections-failed", failed as f64),
            ("connect-failed", connect_failed as f64),
            ("p50-us", pct(0.5)),
            ("p99-us", pct(0.99)),
            ("max-us", h.max() as f64),
            ("seconds", elapsed.as_secs_f64()),
        ] {
            writeln!(out, "{k} {v}").expect("stdout");
        }
        writeln!(out, "done").expect("stdout");
        out.flush().expect("flush");
        // Wait for the parent's "quit" before closing the connections.
        let _ = std::io::stdin().lines().next();
    }
}
