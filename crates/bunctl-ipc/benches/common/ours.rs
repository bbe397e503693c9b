//! bunctl-ipc's side of every workload, written the way its docs suggest.

use super::{Ready, Res, msgs};
use bunctl_ipc::{ClientConnection, EventBus, IpcClient, IpcConnection, IpcMessage, IpcResponse};
use bunctl_ipc::{IpcServer, RecvHalf, SendHalf, ServerOptions, SubscriptionType, serve};
use futures::{FutureExt, SinkExt, StreamExt};
use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};

/// Room for 10,000 connections, none closed for being idle while it is measured.
pub fn options() -> ServerOptions {
    ServerOptions::new().with_max_connections(20_000).with_timeout(Duration::from_secs(3600))
}

/// Serves every connection: `ours`, a task looping on `recv`/`send` as in the README;
/// `ours-serve`, `serve()` (the daemon's path, with `bus`'s events); `ours-sink`, the split
/// connection's `Stream`/`Sink` like the baselines' `forward`.
pub async fn server(path: PathBuf, mode: &'static str, bus: EventBus, ready: Ready) {
    let mut server = IpcServer::bind_with(&path, options()).await.expect("bind");
    ready.send(()).expect("ready");
    if mode == "ours-serve" {
        let _ = serve(server, bus, |r: IpcMessage| async move { msgs::reply_to(&r) }).await;
        return;
    }
    while let Ok(conn) = server.accept().await {
        match mode {
            "ours" => drop(tokio::spawn(recv_send(conn))),
            _ => drop(tokio::spawn(sink(conn))),
        }
    }
}

/// The `recv`/`send` loop of one connection.
#[allow(clippy::manual_async_fn, reason = "an `async fn` would hold the connection twice")]
pub fn recv_send(mut conn: IpcConnection) -> impl Future<Output = ()> {
    async move {
        while let Ok(request) = conn.recv().await
            && conn.send(&msgs::reply_to(&request)).await.is_ok()
        {}
    }
}

/// Feeds a reply for every request that is ready, flushes when none is.
async fn sink(conn: IpcConnection) -> Res {
    let (mut rx, mut tx) = conn.split();
    while let Some(request) = rx.next().await {
        tx.feed(&msgs::reply_to(&request?)).await?;
        while let Some(Some(request)) = rx.next().now_or_never() {
            tx.feed(&msgs::reply_to(&request?)).await?;
        }
        SinkExt::<&IpcResponse>::flush(&mut tx).await?;
    }
    Ok(())
}

impl super::Client for IpcClient {
    async fn connect(path: PathBuf) -> Res<Self> {
        Ok(IpcClient::connect(path).await?)
    }
    async fn request(&mut self, request: &IpcMessage) -> Res<IpcResponse> {
        Ok(IpcClient::request(self, request).await?)
    }
    async fn subscribe(mut self) -> Self {
        let all = SubscriptionType::AllEvents { app_name: None };
        IpcClient::subscribe(&mut self, all).await.map(|()| self).expect("subscribe")
    }
    async fn events(mut self, n: u64) -> Self {
        for _ in 0..n {
            let event = self.next_event().await.expect("event");
            assert!(event.missed().is_none(), "subscriber lagged");
        }
        self
    }
}

/// The client's connection split in two.
pub type Halves = (RecvHalf<OwnedReadHalf, IpcResponse>, SendHalf<OwnedWriteHalf, IpcMessage>);

impl super::Client for Halves {
    async fn connect(path: PathBuf) -> Res<Self> {
        let (conn, _): (ClientConnection, _) = IpcClient::connect(path).await?.into_connection();
        Ok(conn.split())
    }
    async fn request(&mut self, request: &IpcMessage) -> Res<IpcResponse> {
        self.1.send(request).await?;
        Ok(self.0.recv().await?)
    }
    async fn pipelined(self, request: IpcMessage, n: u64) -> (Self, Duration) {
        let (start, (mut rx, mut tx)) = (Instant::now(), self);
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
        ((rx, writer.await.expect("writer")), start.elapsed())
    }
}
