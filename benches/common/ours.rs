//! bunctl-ipc's side of every workload, written the way its docs suggest.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use bunctl_ipc::{
    ClientConnection, EventBus, IpcClient, IpcMessage, IpcResponse, IpcServer, RecvHalf, SendHalf,
    ServerOptions, SubscriptionType, serve_connection,
};
use futures::{FutureExt, SinkExt, StreamExt};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};

use super::msgs;
use super::sides::Ready;

/// How the server side answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerMode {
    /// A task per connection running `conn.recv()` / `conn.send()` (with timeouts), as in the
    /// crate's README.
    Loop,
    /// `serve_connection` with a handler: what the reference daemon runs (events
    /// interleaved with replies).
    Serve,
    /// The `Stream`/`Sink` halves of a split connection, written like the baselines' `forward`:
    /// feed a reply for every request that is ready, flush when none is.
    Sink,
}

fn reply_to(request: &IpcMessage) -> IpcResponse {
    match request {
        IpcMessage::Unsubscribe => IpcResponse::Success { message: "bye".into() },
        _ => msgs::small_reply(),
    }
}

fn options(conns: usize) -> ServerOptions {
    ServerOptions::new().max_connections(conns.max(64))
}

/// Serves `conns` connections, answering every request with [`msgs::small_reply`].
pub async fn server(path: PathBuf, conns: usize, mode: ServerMode, ready: Ready) {
    let mut server = IpcServer::bind_with(&path, options(conns)).await.expect("bind");
    ready.send(()).expect("ready");
    let bus = EventBus::new();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..conns {
        let mut conn = server.accept().await.expect("accept");
        match mode {
            ServerMode::Loop => tasks.spawn(async move {
                while let Ok(request) = conn.recv().await {
                    if conn.send(&reply_to(&request)).await.is_err() {
                        break;
                    }
                }
            }),
            ServerMode::Sink => tasks.spawn(async move {
                let (mut rx, mut tx) = conn.split();
                while let Some(Ok(request)) = rx.next().await {
                    if tx.feed(&reply_to(&request)).await.is_err() {
                        return;
                    }
                    while let Some(Some(Ok(request))) = rx.next().now_or_never() {
                        if tx.feed(&reply_to(&request)).await.is_err() {
                            return;
                        }
                    }
                    if SinkExt::<&IpcResponse>::flush(&mut tx).await.is_err() {
                        return;
                    }
                }
            }),
            ServerMode::Serve => {
                let bus = bus.clone();
                tasks.spawn(async move {
                    let handler = |request: IpcMessage| async move { reply_to(&request) };
                    let _ = serve_connection(conn, &bus, &handler).await;
                })
            }
        };
    }
    while tasks.join_next().await.is_some() {}
}

/// Serves `conns` subscribers of `bus` (the daemon's `serve_connection`).
pub async fn fanout_server(path: PathBuf, conns: usize, bus: EventBus, ready: Ready) {
    let mut server = IpcServer::bind_with(&path, options(conns)).await.expect("bind");
    ready.send(()).expect("ready");
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..conns {
        let conn = server.accept().await.expect("accept");
        let bus = bus.clone();
        tasks.spawn(async move {
            let handler = |request: IpcMessage| async move { reply_to(&request) };
            let _ = serve_connection(conn, &bus, &handler).await;
        });
    }
    while tasks.join_next().await.is_some() {}
}

/// Connects an `IpcClient`.
pub async fn connect(path: PathBuf) -> IpcClient {
    IpcClient::connect(path).await.expect("connect")
}

/// One round trip through the facade: `IpcClient::request`.
pub async fn request(client: &mut IpcClient, request: &IpcMessage) -> IpcResponse {
    client.request(request).await.expect("request")
}

/// The client's connection split in two, for pipelining.
pub type Halves = (RecvHalf<OwnedReadHalf, IpcResponse>, SendHalf<OwnedWriteHalf, IpcMessage>);

/// Connects and splits.
pub async fn connect_halves(path: PathBuf) -> Halves {
    let (conn, _): (ClientConnection, _) = connect(path).await.into_connection();
    conn.split()
}

/// Sends `n` copies of `request` from a second task through the `Sink` (fed, flushed once at
/// the end) while this task reads the `n` replies; returns the time to the last reply.
pub async fn pipelined(halves: Halves, request: IpcMessage, n: u64) -> (Halves, Duration) {
    let (mut rx, mut tx) = halves;
    let start = Instant::now();
    let writer = tokio::spawn(async move {
        for _ in 0..n {
            tx.feed(&request).await.expect("feed");
        }
        SinkExt::<&IpcMessage>::flush(&mut tx).await.expect("flush");
        tx
    });
    for _ in 0..n {
        rx.next().await.expect("reply").expect("frame");
    }
    let tx = writer.await.expect("writer");
    ((rx, tx), start.elapsed())
}

/// Connects and subscribes to every event.
pub async fn subscriber(path: PathBuf) -> IpcClient {
    let mut client = connect(path).await;
    client.subscribe(SubscriptionType::AllEvents { app_name: None }).await.expect("subscribe");
    client
}

/// Receives `n` events.
pub async fn receive_events(mut client: IpcClient, n: u64) -> IpcClient {
    for _ in 0..n {
        let event = client.next_event().await.expect("event");
        assert!(event.missed().is_none(), "subscriber lagged");
    }
    client
}
