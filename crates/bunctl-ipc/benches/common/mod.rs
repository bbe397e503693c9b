//! Workloads, implementations (`floor`, `framed`, `interprocess`, `ours`, `ours-serve`,
//! `ours-sink`, `blocking`: see `BENCHMARKS.md`) and process plumbing of the benchmarks.
#![allow(dead_code)]

/// `$op` `$n` times: the total time and, if `$record`, each one's in ns.
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

use baseline::{Interprocess, Tokio};
use bunctl_ipc::{EventBus, IpcClient, IpcMessage, IpcResponse};
use hdrhistogram::Histogram;
use std::future::Future;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use tokio::runtime::{Builder, Runtime};
use tokio::sync::{broadcast, oneshot};

pub type Ready = mpsc::SyncSender<()>;
pub type Res<T = ()> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

pub fn runtime(multi: bool, timer: bool) -> Runtime {
    let mut b = if multi { Builder::new_multi_thread() } else { Builder::new_current_thread() };
    let rt = b.worker_threads(2).enable_all().build().expect("runtime");
    if timer {
        rt.spawn(async { tokio::time::sleep(Duration::from_secs(3600)).await });
    }
    rt
}

/// `imp`'s server, serving every connection until it is dropped.
pub async fn server(imp: &'static str, path: PathBuf, ready: Ready) {
    match imp {
        "framed" => baseline::server::<Tokio>(path, None, ready).await,
        "interprocess" => baseline::server::<Interprocess>(path, None, ready).await,
        _ => ours::server(path, imp, EventBus::new(), ready).await,
    }
}

/// The client runtime of one setup, its server, and a private socket directory. Flavors: `mt2`,
/// one 2-worker runtime for both sides; `ct`, a current-thread runtime per side and thread;
/// `procs`, the server in a child process. Runtimes have one unrelated timer pending, as real
/// programs do (without, tokio skips its timer work, which only favours the baselines);
/// `mt2-bare` has not.
pub struct Sides {
    flavor: &'static str,
    rt: Runtime,
    /// `ct`: dropping it ends the server's thread; `procs`: the server's process.
    server: (Option<oneshot::Sender<()>>, Option<Peer>),
    dir: tempfile::TempDir,
}

impl Sides {
    pub fn new(flavor: &'static str) -> Sides {
        let rt = runtime(flavor != "ct", flavor != "mt2-bare");
        let dir = tempfile::Builder::new().prefix("bunctl-bench-").tempdir().expect("tempdir");
        Sides { flavor, rt, server: (None, None), dir }
    }
    pub fn serving(flavor: &'static str, imp: &'static str) -> Sides {
        let mut sides = Sides::new(flavor);
        let path = sides.path();
        if flavor == "procs" {
            let mut child = Peer::spawn(&["serve", imp, path.to_str().expect("utf-8")]);
            child.expect("ready");
            sides.server.1 = Some(child);
        } else {
            sides.spawn(move |ready| server(imp, path, ready));
        }
        sides
    }
    pub fn path(&self) -> PathBuf {
        self.dir.path().join("bench.sock")
    }
    /// Starts a server here (with `ct` on a thread of its own), and waits until it is bound.
    pub fn spawn<F: Future<Output = ()> + Send + 'static>(
        &mut self,
        make: impl FnOnce(Ready) -> F,
    ) {
        let (tx, rx) = mpsc::sync_channel(1);
        if self.flavor == "ct" {
            let (serve, stop) = (make(tx), oneshot::channel::<()>());
            self.server.0 = Some(stop.0);
            std::thread::spawn(move || {
                let stopped = async { tokio::select!(() = serve => {}, _ = stop.1 => {}) };
                runtime(false, true).block_on(stopped);
            });
        } else {
            self.rt.spawn(make(tx));
        }
        rx.recv().expect("server failed to start");
    }
    pub fn run<T: Send + 'static>(&self, fut: impl Future<Output = T> + Send + 'static) -> T {
        self.rt.block_on(async move { tokio::spawn(fut).await.expect("bench task") })
    }
}

/// A client of one implementation; every server speaks the same wire.
pub trait Client: Sized + Send + 'static {
    fn connect(path: PathBuf) -> impl Future<Output = Res<Self>> + Send;
    fn request(&mut self, request: &IpcMessage) -> impl Future<Output = Res<IpcResponse>> + Send;
    /// Sends `n` copies of `request` from a second task (fed, flushed once at the end) while
    /// this one reads the `n` replies; the time to the last reply.
    fn pipelined(self, _: IpcMessage, _: u64) -> impl Future<Output = (Self, Duration)> + Send {
        async { unreachable!("pipelined runs on the split connection") }
    }
    /// Subscribes to every event (the baselines' fan-out server sends them unasked).
    fn subscribe(self) -> impl Future<Output = Self> + Send {
        async { self }
    }
    fn events(self, _: u64) -> impl Future<Output = Self> + Send {
        async { unreachable!("events go to `IpcClient`") }
    }
}

/// What a client does in one timed run: round trips of [`msgs::small_request`]; copies of a
/// request pipelined; or the CLI's pattern, connect + one request + close.
#[derive(Clone)]
pub enum Work {
    RoundTrip,
    Pipelined(IpcMessage),
    Connects,
}

/// `run(n, record)`: `n` operations, their total time and, if `record`, each one's in ns.
pub type Run = Box<dyn FnMut(u64, bool) -> (Duration, Vec<u32>)>;

/// `imp`'s client and server on `flavor`, doing `work`.
pub fn setup(imp: &'static str, flavor: &'static str, work: Work) -> Run {
    match (imp, work) {
        ("floor" | "blocking", work) => floor::setup(imp == "blocking", work),
        ("framed", w) => driven::<baseline::Client<Tokio>>(imp, flavor, w),
        ("interprocess", w) => driven::<baseline::Client<Interprocess>>(imp, flavor, w),
        (_, w @ Work::Pipelined(_)) => driven::<ours::Halves>(imp, flavor, w),
        (_, w) => driven::<IpcClient>(imp, flavor, w),
    }
}

/// A [`Run`] of `run(client, n, record)`, the client handed back (and dropped before the sides).
fn drive<C, R, F>(mut state: (Option<C>, Sides), mut run: R) -> Run
where
    C: Send + 'static,
    R: FnMut(C, u64, bool) -> F + 'static,
    F: Future<Output = (C, (Duration, Vec<u32>))> + Send + 'static,
{
    Box::new(move |n, record| {
        let (client, sides) = &mut state;
        let (c, out) = sides.run(run(client.take().expect("client"), n, record));
        *client = Some(c);
        out
    })
}

fn driven<C: Client>(server: &'static str, flavor: &'static str, work: Work) -> Run {
    let sides = Sides::serving(flavor, server);
    let path = sides.path();
    let client = sides.run(C::connect(path.clone())).expect("connect");
    drive((Some(client), sides), move |mut c: C, n, record| {
        let (work, path, req) = (work.clone(), path.clone(), msgs::small_request());
        async move {
            let out = match work {
                Work::RoundTrip => timed_loop!(n, record, c.request(&req).await.expect("request")),
                Work::Pipelined(r) => {
                    let (back, t) = c.pipelined(r, n).await;
                    c = back;
                    (t, vec![])
                }
                Work::Connects => timed_loop!(n, record, {
                    let mut once = C::connect(path.clone()).await.expect("connect");
                    once.request(&req).await.expect("request");
                }),
            };
            (c, out)
        }
    })
}

/// Events published per round of a fan-out run; queues hold a whole round, so nothing is lost.
pub const FANOUT_ROUND: u64 = 4096;

/// One publisher, `subscribers` connections, every event delivered to (and parsed by) each.
pub fn fanout(imp: &str, subscribers: usize) -> Run {
    let mut sides = Sides::new("mt2");
    let path = sides.path();
    match imp {
        "floor" => {
            let frame = msgs::frame(&msgs::event(0));
            Box::new(move |n, _| (floor::batched(subscribers, &[&frame], n), vec![]))
        }
        "framed" => baseline_fanout::<Tokio>(sides, subscribers),
        "interprocess" => baseline_fanout::<Interprocess>(sides, subscribers),
        _ => {
            let bus = EventBus::with_capacity(FANOUT_ROUND as usize);
            let b = bus.clone();
            sides.spawn(move |ready| ours::server(path, "ours-serve", b, ready));
            let publish = move |i| {
                bus.publish(msgs::EVENT_TYPE, Some("web"), msgs::event_data(i));
            };
            fan::<IpcClient>(sides, subscribers, publish)
        }
    }
}

fn baseline_fanout<T: baseline::Transport>(mut sides: Sides, subscribers: usize) -> Run {
    let (tx, _) = broadcast::channel(FANOUT_ROUND as usize);
    let (path, events, publisher) = (sides.path(), Some(tx.clone()), tx.clone());
    sides.spawn(move |ready| baseline::server::<T>(path, events, ready));
    let publish = move |i| {
        publisher.send(msgs::to_bytes(&msgs::event(i))).expect("subscribers");
    };
    let run = fan::<baseline::Client<T>>(sides, subscribers, publish);
    while tx.receiver_count() < subscribers {
        std::thread::sleep(Duration::from_millis(1));
    }
    run
}

fn fan<C: Client>(sides: Sides, k: usize, publish: impl Fn(u64) + Clone + Send + 'static) -> Run {
    let path = sides.path();
    let subs = sides.run(async move {
        let mut subs = Vec::with_capacity(k);
        for _ in 0..k {
            subs.push(C::connect(path.clone()).await.expect("connect").subscribe().await);
        }
        subs
    });
    drive((Some(subs), sides), move |mut subs: Vec<C>, n, _| {
        let publish = publish.clone();
        async move {
            let start = Instant::now();
            for round in (0..n).step_by(FANOUT_ROUND as usize) {
                let k = (n - round).min(FANOUT_ROUND);
                let tasks: Vec<_> = subs.into_iter().map(|s| tokio::spawn(s.events(k))).collect();
                for i in 0..k {
                    publish(i);
                    if i % 64 == 63 {
                        tokio::task::yield_now().await;
                    }
                }
                subs = futures::future::try_join_all(tasks).await.expect("subscriber");
            }
            (subs, (start.elapsed(), vec![]))
        }
    })
}

/// One publisher, one subscriber filtered to the app every event is about, and `others`
/// subscribers each filtered to an app that never publishes: `run(n)` publishes `n` events and
/// returns the CPU time (user + system, every thread of the process: publisher, server
/// connections, clients) spent until the matching subscriber has parsed them all.
pub fn filtered(others: usize) -> Run {
    let mut sides = Sides::new("mt2");
    let (path, bus) = (sides.path(), EventBus::with_capacity(FANOUT_ROUND as usize));
    let b = bus.clone();
    sides.spawn(move |ready| ours::server(path, "ours-serve", b, ready));
    let path = sides.path();
    let clients = sides.run(async move {
        let subscribed = async |app: String| {
            let mut client = IpcClient::connect(path.clone()).await.expect("connect");
            let only = bunctl_ipc::SubscriptionType::AllEvents { app_name: Some(app) };
            IpcClient::subscribe(&mut client, only).await.expect("subscribe");
            client
        };
        let mut idle = Vec::with_capacity(others);
        for i in 0..others {
            idle.push(subscribed(format!("idle-{i}")).await);
        }
        (subscribed("web".into()).await, idle)
    });
    drive((Some(clients), sides), move |(mut watcher, idle), n, _| {
        let bus = bus.clone();
        async move {
            let start = cpu_time();
            for round in (0..n).step_by(FANOUT_ROUND as usize) {
                let k = (n - round).min(FANOUT_ROUND);
                let reading = tokio::spawn(Client::events(watcher, k));
                for i in 0..k {
                    bus.publish(msgs::EVENT_TYPE, Some("web"), msgs::event_data(i));
                    if i % 64 == 63 {
                        tokio::task::yield_now().await;
                    }
                }
                watcher = reading.await.expect("subscriber");
            }
            ((watcher, idle), (cpu_time() - start, vec![]))
        }
    })
}

/// The CPU time this process has used, all threads, user and system.
fn cpu_time() -> Duration {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: `usage` is valid for writes of a `rusage`, which is all getrusage writes.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) };
    assert_eq!(rc, 0, "getrusage: {}", std::io::Error::last_os_error());
    // SAFETY: zeroed is a valid `rusage` (plain integers), and getrusage filled it in.
    let usage = unsafe { usage.assume_init() };
    let time = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    time(usage.ru_utime) + time(usage.ru_stime)
}

/// A child process (this binary, unless [`Peer::start`]ed), spoken to line by line; killed
/// when dropped.
pub struct Peer(Child, ChildStdin, BufReader<ChildStdout>);

impl Peer {
    pub fn spawn(args: &[&str]) -> Peer {
        Peer::start(Command::new(std::env::current_exe().expect("exe")).args(args))
    }
    pub fn start(command: &mut Command) -> Peer {
        let child = command.stdin(Stdio::piped()).stdout(Stdio::piped()).spawn();
        let mut child = child.expect("spawn a child process");
        let (stdin, stdout) = (child.stdin.take(), child.stdout.take());
        Peer(child, stdin.expect("stdin"), BufReader::new(stdout.expect("stdout")))
    }
    /// The value of the next line, which must be `key value`.
    pub fn expect(&mut self, key: &str) -> String {
        let line = (&mut self.2).lines().next().expect("the child process ended").expect("read");
        let (k, v) = line.split_once(' ').unwrap_or((&line, ""));
        assert_eq!(k, key, "the child process said {line:?}");
        v.to_string()
    }
    pub fn tell(&mut self, command: &str) {
        writeln!(self.1, "{command}").expect("tell the child");
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Raises the soft descriptor limit to the hard one (10,000 connections need more than 1,024).
fn raise_nofile() {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: plain libc calls with a valid pointer.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        lim.rlim_cur = lim.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
    }
}

/// The command line without cargo's `--bench`, and whether it was there (`cargo test` runs bench
/// binaries without it). `serve <implementation> <socket>` is the server process of `procs`: it
/// says `ready` once bound and serves until its stdin closes. `oneshot` is [`ask_once`].
pub fn args() -> (Vec<String>, bool) {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    raise_nofile();
    if let [serve, imp, path] = &args[..]
        && serve == "serve"
    {
        let (rt, (tx, rx)) = (runtime(true, true), mpsc::sync_channel(1));
        rt.spawn(server(imp.clone().leak(), path.into(), tx));
        rx.recv().expect("bound");
        println!("ready");
        let _ = std::io::stdin().read_to_end(&mut Vec::new());
        std::process::exit(0);
    }
    if let [oneshot, imp, path] = &args[..]
        && oneshot == "oneshot"
    {
        if let Err(e) = ask_once(imp, path.into()) {
            eprintln!("oneshot {imp}: {e}");
            std::process::exit(1);
        }
        std::process::exit(0);
    }
    (args, std::env::args().any(|a| a == "--bench"))
}

/// `oneshot <framed|ours> <socket>`: a CLI command's whole life, as `bunctl-ipc call` lives
/// it: a current-thread runtime, connect, one `List`, its reply printed, exit.
fn ask_once(imp: &str, path: PathBuf) -> Res {
    async fn ask<C: Client>(path: PathBuf) -> Res<IpcResponse> {
        C::connect(path).await?.request(&IpcMessage::List).await
    }
    let rt = runtime(false, false);
    let reply = match imp {
        "framed" => rt.block_on(ask::<baseline::Client<Tokio>>(path))?,
        _ => rt.block_on(ask::<IpcClient>(path))?,
    };
    println!("{}", serde_json::to_string(&reply)?);
    Ok(())
}

pub fn emit(group: &str, case: &str, imp: &str, metric: &str, value: f64) {
    println!("{group}\t{case}\t{imp}\t{metric}\t{value:.4}");
}

pub fn histogram(values: impl IntoIterator<Item = u64>) -> Histogram<u64> {
    let mut h = Histogram::new(3).expect("3 significant digits");
    values.into_iter().for_each(|v| h.record(v).expect("auto-resizing"));
    h
}
