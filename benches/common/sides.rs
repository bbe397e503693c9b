//! Where the two sides of a benchmark run: one multi-thread runtime with two workers shared by
//! server and client (`mt2`, the figure we judge on), or a current-thread runtime per side on
//! its own OS thread (`ct`, every message crosses threads: noisy on a VM).
//!
//! Every runtime has one unrelated timer pending (an hour-long sleep), as any real program has:
//! a runtime with no timer at all skips the time driver's work on every park, which only the
//! baselines without timeouts would benefit from. `mt2-bare` leaves it out, for comparison.

use std::future::Future;
use std::path::PathBuf;
use std::sync::mpsc;

use tokio::runtime::{Builder, Runtime};

/// Which runtime layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// One multi-thread runtime, 2 workers, both sides.
    Mt2,
    /// As `Mt2`, without the pending timer.
    Mt2Bare,
    /// A current-thread runtime per side, each on its own thread.
    CtPerSide,
}

impl Flavor {
    /// Short label used in reports.
    pub fn label(self) -> &'static str {
        match self {
            Flavor::Mt2 => "mt2",
            Flavor::Mt2Bare => "mt2-bare",
            Flavor::CtPerSide => "ct",
        }
    }
}

/// A timer that stays pending for the whole benchmark.
async fn pending_timer() {
    tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
}

/// Tells the client side that the server is bound.
pub type Ready = mpsc::SyncSender<()>;

/// The runtimes of one benchmark setup and a private directory for its socket.
pub struct Sides {
    flavor: Flavor,
    client_rt: Runtime,
    dir: tempfile::TempDir,
}

impl Sides {
    /// Fresh runtimes and directory.
    pub fn new(flavor: Flavor) -> Sides {
        let client_rt = match flavor {
            Flavor::Mt2 | Flavor::Mt2Bare => {
                Builder::new_multi_thread().worker_threads(2).enable_all().build()
            }
            Flavor::CtPerSide => Builder::new_current_thread().enable_all().build(),
        }
        .expect("runtime");
        if flavor != Flavor::Mt2Bare {
            client_rt.spawn(pending_timer());
        }
        let dir = tempfile::Builder::new().prefix("bunctl-bench-").tempdir().expect("tempdir");
        Sides { flavor, client_rt, dir }
    }

    /// The socket path of this setup.
    pub fn path(&self) -> PathBuf {
        self.dir.path().join("bench.sock")
    }

    /// Starts the server side and waits until it signals that it is bound. With `Mt2` it is a
    /// task of the shared runtime; with `CtPerSide` it gets a thread and a runtime of its own.
    /// The server should return once its clients are gone.
    pub fn spawn_server<M, F>(&self, make: M)
    where
        M: FnOnce(Ready) -> F + Send + 'static,
        F: Future<Output = ()> + Send + 'static,
    {
        let (tx, rx) = mpsc::sync_channel(1);
        match self.flavor {
            Flavor::Mt2 | Flavor::Mt2Bare => {
                self.client_rt.spawn(make(tx));
            }
            Flavor::CtPerSide => {
                std::thread::spawn(move || {
                    let rt = Builder::new_current_thread().enable_all().build().expect("runtime");
                    rt.spawn(pending_timer());
                    rt.block_on(make(tx));
                });
            }
        }
        rx.recv().expect("server failed to start");
    }

    /// Runs `fut` as a task of the client runtime and returns its output.
    pub fn run<T: Send + 'static>(&self, fut: impl Future<Output = T> + Send + 'static) -> T {
        self.client_rt.block_on(async move { tokio::spawn(fut).await.expect("bench task") })
    }
}

/// A client object that moves into the benchmark task for each run and comes back afterwards.
pub struct Driven<C> {
    client: Option<C>,
    /// Declared after `client` so that the client is dropped (and the server released) first.
    pub sides: Sides,
}

impl<C: Send + 'static> Driven<C> {
    /// Connects a client inside the client runtime.
    pub fn connect<F>(sides: Sides, connect: F) -> Driven<C>
    where
        F: Future<Output = C> + Send + 'static,
    {
        let client = sides.run(connect);
        Driven { client: Some(client), sides }
    }

    /// Runs `f` with the client inside the client runtime; `f` hands the client back.
    pub fn drive<R, F, Fut>(&mut self, f: F) -> R
    where
        R: Send + 'static,
        F: FnOnce(C) -> Fut,
        Fut: Future<Output = (C, R)> + Send + 'static,
    {
        let client = self.client.take().expect("client");
        let (client, out) = self.sides.run(f(client));
        self.client = Some(client);
        out
    }
}
