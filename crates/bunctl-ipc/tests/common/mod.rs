//! Shared helpers of the facade's integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use bunctl_ipc::{IpcConnection, IpcMessage, IpcResponse, IpcServer, SubscriptionType};

/// A fresh endpoint for one test: a socket path in a private temporary directory on Unix, a
/// unique pipe name on Windows. Dropping it removes the directory.
pub struct Endpoint {
    path: PathBuf,
    _dir: Option<tempfile::TempDir>,
}

impl Endpoint {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

pub fn fresh_endpoint() -> Endpoint {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    if cfg!(windows) {
        let name = format!(r"\\.\pipe\bunctl-test-{}-{n}", std::process::id());
        Endpoint { path: PathBuf::from(name), _dir: None }
    } else {
        let dir = tempfile::Builder::new().prefix("bunctl-ipc-").tempdir().expect("tempdir");
        Endpoint { path: dir.path().join(format!("t{n}.sock")), _dir: Some(dir) }
    }
}

/// A deadline for anything a test waits on, so a bug fails the test instead of hanging it.
pub const PATIENCE: Duration = Duration::from_secs(20);

pub async fn within<T>(what: &str, fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, fut).await.unwrap_or_else(|_| panic!("timed out: {what}"))
}

/// Binds a server that answers every request with `Success { message: <request as JSON> }`,
/// one task per connection, until the test ends.
pub async fn echo_server(endpoint: &Endpoint) -> tokio::task::JoinHandle<()> {
    let mut server = IpcServer::bind(endpoint.path()).await.expect("bind");
    tokio::spawn(async move {
        while let Ok(conn) = server.accept().await {
            tokio::spawn(echo(conn));
        }
    })
}

pub async fn echo(mut conn: IpcConnection) {
    loop {
        let reply = match conn.recv().await {
            Ok(msg) => IpcResponse::Success { message: serde_json::to_string(&msg).expect("json") },
            Err(e) if e.is_recoverable() && !e.is_timeout() => {
                IpcResponse::Error { message: e.to_string() }
            }
            Err(_) => return,
        };
        if conn.send(&reply).await.is_err() {
            return;
        }
    }
}

pub fn echoed(msg: &IpcMessage) -> IpcResponse {
    IpcResponse::Success { message: serde_json::to_string(msg).expect("json") }
}

/// Every message variant once.
pub fn all_messages() -> Vec<IpcMessage> {
    use bunctl_ipc::SubscriptionType::*;
    vec![
        IpcMessage::Start {
            name: "web".into(),
            config: r#"{"command":"bun","args":["run"]}"#.into(),
        },
        IpcMessage::Stop { name: "web".into() },
        IpcMessage::Restart { name: "wéb ✓".into() },
        IpcMessage::Delete { name: "".into() },
        IpcMessage::Status { name: Some("web".into()) },
        IpcMessage::Status { name: None },
        IpcMessage::List,
        IpcMessage::Logs { name: None, lines: usize::MAX },
        IpcMessage::Subscribe { subscription: StatusEvents { app_name: None } },
        IpcMessage::Subscribe { subscription: LogEvents { app_name: Some("web".into()) } },
        IpcMessage::Subscribe { subscription: AllEvents { app_name: None } },
        IpcMessage::Unsubscribe,
    ]
}

/// Runs the library's own `serve` loop with a handler that answers every request with
/// `Success { message: <request as JSON> }`, like `echo`. Returns the bus for publishing.
pub async fn serve_echo(
    endpoint: &Endpoint,
    options: bunctl_ipc::ServerOptions,
) -> (bunctl_ipc::EventBus, tokio::task::JoinHandle<bunctl_ipc::Result<()>>) {
    let server = IpcServer::bind_with(endpoint.path(), options).await.expect("bind");
    let bus = bunctl_ipc::EventBus::new();
    let task = tokio::spawn(bunctl_ipc::serve(server, bus.clone(), |msg: IpcMessage| async move {
        IpcResponse::Success { message: serde_json::to_string(&msg).expect("json") }
    }));
    (bus, task)
}

/// Sends raw bytes on a fresh connection and returns the connection for reading replies.
pub async fn raw_client(
    endpoint: &Endpoint,
) -> bunctl_ipc::Connection<
    impl tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    IpcResponse,
    IpcMessage,
> {
    let (conn, _) =
        bunctl_ipc::IpcClient::connect(endpoint.path()).await.expect("connect").into_connection();
    conn
}

/// One frame around `payload`, whatever it is.
pub fn frame(payload: &[u8]) -> Vec<u8> {
    let mut v = (payload.len() as u32).to_le_bytes().to_vec();
    v.extend_from_slice(payload);
    v
}

/// The `OUTCOME:` lines a child test process prints on stdout, read on a thread of their own so
/// that the caller can wait for one with a deadline (`recv_timeout`), blocking or not.
pub fn outcomes(child: &mut std::process::Child) -> std::sync::mpsc::Receiver<String> {
    use std::io::BufRead;
    let stdout = child.stdout.take().expect("the child's stdout is piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(outcome) = line.strip_prefix("OUTCOME:") {
                let _ = tx.send(outcome.to_owned());
            }
        }
    });
    rx
}

/// The model tests' filters: every event (0), app `a`'s log lines (1), every status event (2).
pub fn filter(n: u8) -> SubscriptionType {
    match n {
        0 => SubscriptionType::AllEvents { app_name: None },
        1 => SubscriptionType::LogEvents { app_name: Some("a".into()) },
        _ => SubscriptionType::StatusEvents { app_name: None },
    }
}
