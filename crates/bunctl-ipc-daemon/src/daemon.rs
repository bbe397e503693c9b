//! [`Daemon`]: the app table, request handling, supervision and output capture.

use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bunctl_ipc::event_types::{LOG_LINE, PROCESS_EXITED, PROCESS_STARTED, STATUS_CHANGE};
use bunctl_ipc::{
    EventBus, Handler, IpcError, IpcMessage, IpcResponse, IpcServer, SubscriptionType,
};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::io::AsyncRead;
use tokio::process::{Child, Command};
use tokio::sync::{Notify, OwnedMutexGuard, watch};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::output::{AppLog, OutputStream, read_lines};
use crate::tree::ProcessTree;

/// How long an app's output readers may take to reach end of stream after the app exited,
/// before `process_exited` is published anyway (a descendant may hold the pipes open).
const OUTPUT_DRAIN: Duration = Duration::from_secs(1);

/// Tunables of a [`Daemon`].
///
/// ```
/// use bunctl_ipc_daemon::DaemonOptions;
/// use std::time::Duration;
///
/// let options = DaemonOptions::new().with_stop_grace(Duration::from_secs(2));
/// assert_eq!(options.stop_grace(), Duration::from_secs(2));
/// ```
#[derive(Debug, Clone)]
pub struct DaemonOptions {
    stop_grace: Duration,
    max_line_len: usize,
}

impl DaemonOptions {
    /// Defaults: a 5 s stop grace period, lines split at 16 KiB. (How many lines each app
    /// keeps for `Logs` is the bus's retention: [`bunctl_ipc::BusOptions`].)
    pub fn new() -> Self {
        DaemonOptions { stop_grace: Duration::from_secs(5), max_line_len: 16 * 1024 }
    }

    /// How long `Stop` gives an app's main process after SIGTERM before the whole group gets
    /// SIGKILL, and how long an exited app's leftovers get (Unix; Windows has no polite
    /// signal and stops at once).
    pub fn with_stop_grace(mut self, grace: Duration) -> Self {
        self.stop_grace = grace;
        self
    }

    /// The longest line kept whole, in bytes (at least 1); longer lines are split.
    pub fn with_max_line_len(mut self, bytes: usize) -> Self {
        self.max_line_len = bytes.max(1);
        self
    }

    /// The stop grace period in force (see [`with_stop_grace`](Self::with_stop_grace)).
    pub fn stop_grace(&self) -> Duration {
        self.stop_grace
    }

    /// The longest line kept whole (see [`with_max_line_len`](Self::with_max_line_len)).
    pub fn max_line_len(&self) -> usize {
        self.max_line_len
    }
}

impl Default for DaemonOptions {
    fn default() -> Self {
        DaemonOptions::new()
    }
}

/// An app's configuration, the JSON text of `Start { config }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct AppConfig {
    command: String,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    cwd: Option<PathBuf>,
    #[serde(default)]
    env: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AppState {
    Starting,
    Running,
    Stopping,
    Stopped,
    Exited,
    Errored,
    /// Announced when the app is removed; no app in the table is in it.
    Deleted,
}

impl AppState {
    fn as_str(self) -> &'static str {
        match self {
            AppState::Starting => "starting",
            AppState::Running => "running",
            AppState::Stopping => "stopping",
            AppState::Stopped => "stopped",
            AppState::Exited => "exited",
            AppState::Errored => "errored",
            AppState::Deleted => "deleted",
        }
    }
}

/// An app's main process and the tree it heads.
struct Process {
    child: Child,
    tree: ProcessTree,
}

/// What the supervisor of one run of an app owns: whose run it is, the process, the readers of
/// its output (drained after its exit), and its ends of the [`Supervisor`] handles.
struct Supervised {
    name: String,
    id: u64,
    process: Process,
    readers: [Option<JoinHandle<()>>; 2],
    stop: Arc<Notify>,
    exited: watch::Sender<bool>,
}

/// How the supervisor of an app's running process is reached (see [`Daemon::supervise`]).
struct Supervisor {
    /// Asks the supervisor to stop the process.
    stop: Arc<Notify>,
    /// Becomes true once the process is reaped and its exit published.
    exited: watch::Receiver<bool>,
}

struct App {
    /// Distinguishes this app from a later one of the same name (after `Delete` + `Start`).
    id: u64,
    config: AppConfig,
    state: AppState,
    pid: Option<u32>,
    restarts: u32,
    exit_code: Option<i32>,
    signal: Option<i32>,
    /// Behind its own lock: output capture never takes the app table's.
    logs: Arc<AppLog>,
    /// The bus's position when the app was created: its kept lines are those after it.
    since: u64,
    /// While a process runs.
    supervisor: Option<Supervisor>,
    /// Serializes Start/Stop/Restart/Delete of this app.
    op: Arc<tokio::sync::Mutex<()>>,
}

impl App {
    fn record(&self, name: &str) -> Value {
        json!({
            "name": name,
            "state": self.state.as_str(),
            "pid": self.pid,
            "restarts": self.restarts,
            "exit_code": self.exit_code,
            "signal": self.signal,
        })
    }
}

type Apps = BTreeMap<String, App>;

/// The app called `name` if it is still the one with `id` (not deleted, nor deleted and
/// created again since `id` was read).
fn app_with_id<'a>(apps: &'a mut Apps, name: &str, id: u64) -> Option<&'a mut App> {
    apps.get_mut(name).filter(|app| app.id == id)
}

struct Inner {
    bus: EventBus,
    options: DaemonOptions,
    apps: Mutex<Apps>,
    next_id: AtomicU64,
    closing: AtomicBool,
}

/// The reference daemon's state and request handling; cheap to clone (clones share it).
///
/// Serve it with [`Daemon::serve`] (or hand it to [`bunctl_ipc::serve`], as it implements
/// [`Handler`]), or call [`Daemon::handle`] directly. See the [crate docs](crate) for the
/// requests, replies and events.
///
/// ```
/// use bunctl_ipc::{EventBus, IpcMessage, IpcResponse};
/// use bunctl_ipc_daemon::Daemon;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let daemon = Daemon::new(EventBus::new());
/// let reply = daemon.handle(IpcMessage::Stop { name: "nope".into() }).await;
/// assert_eq!(reply, IpcResponse::Error { message: "unknown app: nope".into() });
/// # }
/// ```
#[derive(Clone)]
pub struct Daemon {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Daemon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Daemon")
            .field("apps", &self.lock().len())
            .field("options", &self.inner.options)
            .finish()
    }
}

fn success(message: impl Into<String>) -> IpcResponse {
    IpcResponse::Success { message: message.into() }
}

fn failure(message: impl Into<String>) -> IpcResponse {
    IpcResponse::Error { message: message.into() }
}

fn unknown(name: &str) -> IpcResponse {
    failure(format!("unknown app: {name}"))
}

impl Daemon {
    /// A daemon with default [`DaemonOptions`] that publishes on `bus`.
    pub fn new(bus: EventBus) -> Self {
        Self::with_options(bus, DaemonOptions::new())
    }

    /// A daemon with the given options that publishes on `bus`.
    pub fn with_options(bus: EventBus, options: DaemonOptions) -> Self {
        Daemon {
            inner: Arc::new(Inner {
                bus,
                options,
                apps: Mutex::new(BTreeMap::new()),
                next_id: AtomicU64::new(0),
                closing: AtomicBool::new(false),
            }),
        }
    }

    /// The bus the daemon publishes on.
    pub fn bus(&self) -> &EventBus {
        &self.inner.bus
    }

    /// Serves `server` until `shutdown` completes, then stops accepting (removing the socket),
    /// ends every connection and stops every app ([`Daemon::shutdown`]).
    ///
    /// Returns the accept loop's error if it failed before `shutdown` completed.
    pub async fn serve(
        &self,
        server: IpcServer,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), IpcError> {
        let endpoint = server.endpoint().to_owned();
        info!(endpoint = %endpoint.display(), "daemon listening");
        // On shutdown the listener goes first (its socket file with it), then requests in
        // progress get up to the stop grace period to be answered before connections close.
        let grace = self.inner.options.stop_grace;
        let served =
            bunctl_ipc::serve_until(server, self.inner.bus.clone(), self.clone(), shutdown, grace)
                .await;
        info!(endpoint = %endpoint.display(), "daemon shutting down");
        self.shutdown().await;
        served
    }

    /// Refuses further `Start` and `Restart` requests and stops every running app, waiting
    /// until each is gone (at most about the stop grace period, after any `Start`, `Stop`,
    /// `Restart` or `Delete` already under way). Once it returns, no app runs and none starts.
    pub async fn shutdown(&self) {
        self.inner.closing.store(true, Ordering::SeqCst);
        // Every app, not only the running ones: a Start or Restart under way holds its app's
        // operation lock, and launches nothing once `closing` is set (see `launch`), so after
        // taking each lock the app's process, if any, is the last it will have.
        let apps: Vec<(String, u64, Arc<tokio::sync::Mutex<()>>)> = self
            .lock()
            .iter()
            .map(|(name, app)| (name.clone(), app.id, Arc::clone(&app.op)))
            .collect();
        let stops: Vec<_> = apps
            .into_iter()
            .map(|(name, id, op)| {
                let daemon = self.clone();
                tokio::spawn(async move {
                    let _op = op.lock().await;
                    daemon.stop_run(&name, id).await
                })
            })
            .collect();
        for stop in stops {
            let _ = stop.await;
        }
        debug!("all apps stopped");
    }

    /// Answers one request. `Subscribe`/`Unsubscribe` belong to the connection
    /// ([`bunctl_ipc::serve_connection`] answers them) and get an `Error` here.
    pub async fn handle(&self, message: IpcMessage) -> IpcResponse {
        match message {
            IpcMessage::Start { name, config } => self.start(&name, &config),
            IpcMessage::Stop { name } => self.stop(&name).await,
            IpcMessage::Restart { name } => self.restart(&name).await,
            IpcMessage::Delete { name } => self.delete(&name).await,
            IpcMessage::Status { name } => self.status(name.as_deref()),
            IpcMessage::List => {
                IpcResponse::Data { data: json!(self.lock().keys().collect::<Vec<_>>()) }
            }
            IpcMessage::Logs { name, lines } => self.logs(name.as_deref(), lines),
            IpcMessage::Subscribe { .. } | IpcMessage::Unsubscribe => {
                failure("subscriptions are handled by the connection, not by the daemon")
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, Apps> {
        self.inner.apps.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Publishes an event about `app`; called with the apps lock held, so that what a client
    /// is told and what `Status` says never disagree.
    fn publish(&self, event_type: &str, app: &str, data: Value) {
        self.inner.bus.publish(event_type, Some(app), data);
    }

    fn publish_state(&self, name: &str, app: &mut App, state: AppState) {
        app.state = state;
        debug!(app = name, state = state.as_str(), "state");
        self.publish(STATUS_CHANGE, name, json!({ "app": name, "state": state.as_str() }));
    }

    fn start(&self, name: &str, config: &str) -> IpcResponse {
        if name.is_empty() {
            return failure("app name must not be empty");
        }
        if self.inner.closing.load(Ordering::SeqCst) {
            return failure("daemon is shutting down");
        }
        let config: AppConfig = match serde_json::from_str(config) {
            Ok(c) => c,
            Err(e) => return failure(format!("invalid config for {name}: {e}")),
        };
        if config.command.is_empty() {
            return failure(format!("invalid config for {name}: `command` must not be empty"));
        }
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let op = Arc::new(tokio::sync::Mutex::new(()));
        // Held while spawning, so a concurrent Stop/Delete waits for the spawn's outcome.
        let Ok(_op) = Arc::clone(&op).try_lock_owned() else {
            return failure("internal error: fresh app lock is taken");
        };
        {
            let mut apps = self.lock();
            if apps.contains_key(name) {
                return failure(format!(
                    "app {name} already exists (Restart it, or Delete it first)"
                ));
            }
            apps.insert(
                name.to_owned(),
                App {
                    id,
                    config,
                    state: AppState::Starting,
                    pid: None,
                    restarts: 0,
                    exit_code: None,
                    signal: None,
                    logs: Arc::default(),
                    since: self.inner.bus.last_seq(),
                    supervisor: None,
                    op,
                },
            );
        }
        match self.launch(name, id) {
            Ok(pid) => success(format!("Started {name} (pid {pid})")),
            Err(e) => {
                self.lock().remove(name);
                if self.inner.closing.load(Ordering::SeqCst) {
                    return failure("daemon is shutting down");
                }
                failure(format!("failed to start {name}: {e}"))
            }
        }
    }

    fn status(&self, name: Option<&str>) -> IpcResponse {
        let apps = self.lock();
        match name {
            Some(name) => match apps.get(name) {
                Some(app) => IpcResponse::Data { data: app.record(name) },
                None => unknown(name),
            },
            None => IpcResponse::Data {
                data: Value::Array(apps.iter().map(|(name, app)| app.record(name)).collect()),
            },
        }
    }

    /// The last `lines` kept lines of one app or of all, from the bus's retention: the store
    /// `Follow` replays, so the two always agree. Each line has its position (`seq`), so a
    /// client that subscribed first can drop the lines it already has.
    fn logs(&self, name: Option<&str>, lines: usize) -> IpcResponse {
        // The table lock only long enough to learn which apps exist, and since when.
        let since: BTreeMap<String, u64> = {
            let apps = self.lock();
            match name {
                Some(name) => match apps.get(name) {
                    Some(app) => BTreeMap::from([(name.to_owned(), app.since)]),
                    None => return unknown(name),
                },
                None => apps.iter().map(|(name, app)| (name.clone(), app.since)).collect(),
            }
        };
        let filter = SubscriptionType::LogEvents { app_name: name.map(str::to_owned) };
        let mut kept = self.inner.bus.history(&filter);
        // Lines of a deleted app, or of an earlier app of the same name, are not this one's.
        kept.retain(|event| {
            let app = event.app_name().and_then(|app| since.get(app));
            app.is_some_and(|since| event.seq().is_some_and(|seq| seq > *since))
        });
        let skip = kept.len().saturating_sub(lines);
        let data = kept[skip..]
            .iter()
            .map(|event| {
                let mut line = event.data().clone();
                line["seq"] = json!(event.seq());
                line
            })
            .collect();
        IpcResponse::Data { data: Value::Array(data) }
    }

    /// The app's id, with its operation lock held (Start, Stop, Restart and Delete of one app
    /// run one at a time), if the app exists.
    async fn claim(&self, name: &str) -> Option<(u64, OwnedMutexGuard<()>)> {
        let (id, op) = self.lock().get(name).map(|app| (app.id, Arc::clone(&app.op)))?;
        Some((id, op.lock_owned().await))
    }

    async fn stop(&self, name: &str) -> IpcResponse {
        let Some((id, _op)) = self.claim(name).await else { return unknown(name) };
        match self.stop_run(name, id).await {
            Some(true) => success(format!("Stopped {name}")),
            Some(false) => success(format!("{name} is not running")),
            None => unknown(name),
        }
    }

    async fn restart(&self, name: &str) -> IpcResponse {
        let Some((id, _op)) = self.claim(name).await else { return unknown(name) };
        if self.inner.closing.load(Ordering::SeqCst) {
            return failure("daemon is shutting down");
        }
        if self.stop_run(name, id).await.is_none() {
            return unknown(name);
        }
        match self.launch(name, id) {
            Ok(pid) => {
                if let Some(app) = app_with_id(&mut self.lock(), name, id) {
                    app.restarts += 1;
                }
                success(format!("Restarted {name} (pid {pid})"))
            }
            Err(_) if self.inner.closing.load(Ordering::SeqCst) => {
                failure("daemon is shutting down")
            }
            Err(e) => {
                if let Some(app) = app_with_id(&mut self.lock(), name, id) {
                    self.publish_state(name, app, AppState::Errored);
                }
                failure(format!("failed to restart {name}: {e}"))
            }
        }
    }

    async fn delete(&self, name: &str) -> IpcResponse {
        let Some((id, _op)) = self.claim(name).await else { return unknown(name) };
        if self.stop_run(name, id).await.is_none() {
            return unknown(name);
        }
        let mut apps = self.lock();
        if app_with_id(&mut apps, name, id).is_none() {
            return unknown(name);
        }
        if let Some(app) = apps.remove(name) {
            app.logs.close();
        }
        self.publish(
            STATUS_CHANGE,
            name,
            json!({ "app": name, "state": AppState::Deleted.as_str() }),
        );
        success(format!("Deleted {name}"))
    }

    /// Stops the app's process if it has one and waits until its exit is published.
    /// `Some(true)`: stopped; `Some(false)`: was not running; `None`: no such app.
    async fn stop_run(&self, name: &str, id: u64) -> Option<bool> {
        let (stop, mut exited) = {
            let mut apps = self.lock();
            let app = app_with_id(&mut apps, name, id)?;
            let Some(supervisor) = &app.supervisor else { return Some(false) };
            let handles = (Arc::clone(&supervisor.stop), supervisor.exited.clone());
            self.publish_state(name, app, AppState::Stopping);
            handles
        };
        stop.notify_one();
        // An error means the supervisor is gone, which also means the process is.
        let _ = exited.wait_for(|done| *done).await;
        Some(true)
    }

    /// Spawns the app's process and its supervisor. Returns the pid. Once the daemon is
    /// closing, launches nothing: the check under the apps lock, where the process becomes the
    /// app's, is what `shutdown` relies on (a process spawned meanwhile is killed here).
    fn launch(&self, name: &str, id: u64) -> io::Result<u32> {
        let closing = || io::Error::other("daemon is shutting down");
        if self.inner.closing.load(Ordering::SeqCst) {
            return Err(closing());
        }
        let config = app_with_id(&mut self.lock(), name, id)
            .map(|app| app.config.clone())
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "app was deleted"))?;
        let mut command = Command::new(&config.command);
        command
            .args(&config.args)
            .envs(&config.env)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // If the supervisor is dropped without stopping it, the process does not outlive it
            // (nor does the rest of its tree: see `ProcessTree`'s drop).
            .kill_on_drop(true);
        if let Some(cwd) = &config.cwd {
            command.current_dir(cwd);
        }
        // Its own process tree (a process group, or a job): Stop ends all of it, and a Ctrl-C
        // meant for the daemon's terminal does not reach the apps behind the daemon's back.
        ProcessTree::prepare(&mut command);
        let mut child = command.spawn().map_err(|e| {
            io::Error::new(e.kind(), format!("cannot run {:?}: {e}", config.command))
        })?;
        // Before anything else can fail, so that an early return still ends the whole tree.
        let tree = ProcessTree::of(&child);
        let pid = child.id().unwrap_or_default();
        let stop = Arc::new(Notify::new());
        let (exited_tx, exited_rx) = watch::channel(false);
        let log = {
            let mut apps = self.lock();
            let Some(app) = app_with_id(&mut apps, name, id) else {
                return Err(io::Error::new(io::ErrorKind::NotFound, "app was deleted"));
            };
            if self.inner.closing.load(Ordering::SeqCst) {
                // Dropping the child and its tree ends them.
                return Err(closing());
            }
            app.pid = Some(pid);
            app.exit_code = None;
            app.signal = None;
            app.supervisor = Some(Supervisor { stop: Arc::clone(&stop), exited: exited_rx });
            self.publish(PROCESS_STARTED, name, json!({ "app": name, "pid": pid }));
            self.publish_state(name, app, AppState::Running);
            Arc::clone(&app.logs)
        };
        info!(app = name, pid, command = %config.command, "started");
        // Readers start after `process_started` is out, so no line can precede it.
        let readers = [
            child.stdout.take().map(|out| self.spawn_reader(name, &log, OutputStream::Stdout, out)),
            child.stderr.take().map(|err| self.spawn_reader(name, &log, OutputStream::Stderr, err)),
        ];
        let process = Process { child, tree };
        let run =
            Supervised { name: name.to_owned(), id, process, readers, stop, exited: exited_tx };
        tokio::spawn(self.clone().supervise(run));
        Ok(pid)
    }

    fn spawn_reader(
        &self,
        name: &str,
        log: &Arc<AppLog>,
        stream: OutputStream,
        output: impl AsyncRead + Unpin + Send + 'static,
    ) -> JoinHandle<()> {
        let inner = Arc::clone(&self.inner);
        let log = Arc::clone(log);
        let name = name.to_owned();
        tokio::spawn(async move {
            read_lines(output, inner.options.max_line_len, |line| {
                log.record(|| {
                    let data = json!({ "app": name, "stream": stream.as_str(), "line": line });
                    inner.bus.publish(LOG_LINE, Some(&name), data);
                });
            })
            .await;
        })
    }

    /// Owns the app's process: waits for it to exit or for a stop request, ends what is left
    /// of its tree, then publishes the exit.
    async fn supervise(self, run: Supervised) {
        let Supervised { name, id, process: Process { mut child, tree }, readers, stop, exited } =
            run;
        let grace = self.inner.options.stop_grace;
        let (status, stopped) = tokio::select! {
            status = child.wait() => (status, false),
            () = stop.notified() => (stop_process(&mut child, &tree, grace).await, true),
        };
        // The app is its whole tree: what the main process leaves behind goes with it. After a
        // stop they had the grace period along with the main process; after an exit of its own
        // they get one now, where there is a polite signal (Unix).
        if !tree.is_empty() {
            debug!(app = %name, "processes left behind by the app; stopping them");
            let polite = cfg!(unix) && !stopped;
            if polite {
                tree.terminate();
            }
            if !polite || !tree.wait_empty(tokio::time::Instant::now() + grace).await {
                tree.kill();
            }
        }
        drop(tree);
        let drain_until = tokio::time::Instant::now() + OUTPUT_DRAIN;
        for reader in readers.into_iter().flatten() {
            if tokio::time::timeout_at(drain_until, reader).await.is_err() {
                debug!(app = %name, "output still open after exit; lines may follow process_exited");
            }
        }
        let (exit_code, signal) = match &status {
            Ok(status) => (status.code(), exit_signal(status)),
            Err(e) => {
                warn!(app = %name, error = %e, "could not wait for the process");
                (None, None)
            }
        };
        info!(app = %name, ?exit_code, ?signal, stopped, "exited");
        {
            let mut apps = self.lock();
            if let Some(app) = app_with_id(&mut apps, &name, id) {
                app.pid = None;
                app.exit_code = exit_code;
                app.signal = signal;
                app.supervisor = None;
                self.publish(
                    PROCESS_EXITED,
                    &name,
                    json!({ "app": name, "exit_code": exit_code, "signal": signal }),
                );
                let state = if stopped { AppState::Stopped } else { AppState::Exited };
                self.publish_state(&name, app, state);
            }
        }
        exited.send_replace(true);
    }
}

impl Handler for Daemon {
    fn handle(&self, message: IpcMessage) -> impl Future<Output = IpcResponse> + Send {
        Daemon::handle(self, message)
    }

    fn server_name(&self) -> String {
        format!("bunctl-ipc-daemon {}", env!("CARGO_PKG_VERSION"))
    }
}

/// Stops the app's tree: asks politely (SIGTERM to the group; Windows has no polite signal),
/// gives the main process `grace` to exit, then kills the whole tree.
async fn stop_process(
    child: &mut Child,
    tree: &ProcessTree,
    grace: Duration,
) -> io::Result<ExitStatus> {
    tree.terminate();
    if cfg!(unix) {
        match tokio::time::timeout(grace, child.wait()).await {
            Ok(status) => return status,
            Err(_) => debug!(?grace, "still running after SIGTERM; killing the process group"),
        }
    }
    tree.kill();
    // The tree may be the child alone (no job on Windows), and killing an exited child is
    // harmless: the error is of no interest.
    let _ = child.start_kill();
    child.wait().await
}

/// The signal that ended the process, on Unix.
fn exit_signal(status: &ExitStatus) -> Option<i32> {
    #[cfg(unix)]
    {
        std::os::unix::process::ExitStatusExt::signal(status)
    }
    #[cfg(not(unix))]
    {
        let _ = status;
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Holding the app table's lock, as a slow request would, does not stop an app's output
    /// from being captured and published: capture never takes that lock.
    #[cfg(unix)]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[allow(clippy::await_holding_lock)] // holding it across the waits is the point
    async fn output_is_captured_while_the_app_table_is_locked() {
        use bunctl_ipc::SubscriptionType;

        let patience = Duration::from_secs(20);
        let bus = EventBus::new();
        let mut events = bus.subscribe(SubscriptionType::LogEvents { app_name: None });
        let daemon = Daemon::new(bus);
        let config = json!({ "command": "sh", "args": ["-c", "while :; do echo flood; done"] });
        let start = IpcMessage::Start { name: "flood".into(), config: config.to_string() };
        let reply = daemon.handle(start).await;
        assert!(matches!(reply, IpcResponse::Success { .. }), "{reply:?}");

        let mut lines = 0;
        {
            let _table = daemon.lock();
            while lines < 1000 {
                let event = tokio::time::timeout(patience, events.recv())
                    .await
                    .expect("output keeps flowing while the table is locked")
                    .expect("the bus is open");
                lines += usize::from(event.event_type() == LOG_LINE);
            }
        }
        let logs = daemon.handle(IpcMessage::Logs { name: Some("flood".into()), lines: 3 }).await;
        assert!(
            matches!(&logs, IpcResponse::Data { data } if data.as_array().is_some_and(|l| l.len() == 3)),
            "{logs:?}"
        );
        daemon.shutdown().await;
    }

    #[test]
    fn config_rejects_unknown_keys_and_requires_command() {
        assert!(serde_json::from_str::<AppConfig>(r#"{"command":"x","arg":[]}"#).is_err());
        assert!(serde_json::from_str::<AppConfig>(r#"{"args":[]}"#).is_err());
        let c: AppConfig =
            serde_json::from_str(r#"{"command":"x","env":{"A":"1"},"cwd":"/"}"#).expect("valid");
        assert!(c.args.is_empty() && c.env["A"] == "1");
    }
}
