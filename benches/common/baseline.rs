//! The hand-written alternatives: tokio-util `LengthDelimitedCodec` (u32, little-endian) with
//! serde_json, as a user would write it, over tokio's `UnixStream` ("framed") or over the
//! `interprocess` crate's tokio local socket ("interprocess").
//!
//! Both sides are written the idiomatic way: requests serialized with `serde_json::to_vec`,
//! frames parsed with `serde_json::from_slice`, the connection split into a `FramedRead` and a
//! `FramedWrite`, and the server answering with `stream.map(..).forward(sink)`, which flushes
//! only when no further request is ready (so replies to pipelined requests share writes).

use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bunctl_ipc::{IpcMessage, IpcResponse, MAX_MESSAGE_SIZE};
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use interprocess::local_socket::tokio::prelude::*;
use interprocess::local_socket::{GenericFilePath, ListenerOptions};
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::broadcast;
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};

use super::msgs;
use super::sides::Ready;

/// The framing a user would configure: `[u32 LE length][payload]`, 10 MiB limit.
pub fn codec() -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .little_endian()
        .length_field_length(4)
        .max_frame_length(MAX_MESSAGE_SIZE)
        .new_codec()
}

/// `serde_json::to_vec`, as a `Bytes` for the codec.
pub fn to_bytes<T: Serialize>(msg: &T) -> Bytes {
    Bytes::from(serde_json::to_vec(msg).expect("json"))
}

/// A byte stream to run the framing over.
pub trait Transport: Send + Sync + 'static {
    /// Label in reports.
    const NAME: &'static str;
    /// A connected stream.
    type Stream: AsyncRead + AsyncWrite + Send + Unpin + 'static;
    /// Its reading half.
    type Read: AsyncRead + Send + Unpin + 'static;
    /// Its writing half.
    type Write: AsyncWrite + Send + Unpin + 'static;
    /// A listener.
    type Listener: Send + Sync + 'static;
    /// Binds `path` (inside a runtime).
    fn bind(path: &Path) -> Self::Listener;
    /// Accepts one connection.
    fn accept(l: &Self::Listener) -> impl Future<Output = Self::Stream> + Send;
    /// Connects to `path`.
    fn connect(path: PathBuf) -> impl Future<Output = Self::Stream> + Send;
    /// Splits a stream into owned halves.
    fn split(s: Self::Stream) -> (Self::Read, Self::Write);
}

/// tokio's `UnixStream`.
pub struct Tokio;

impl Transport for Tokio {
    const NAME: &'static str = "framed";
    type Stream = tokio::net::UnixStream;
    type Read = tokio::net::unix::OwnedReadHalf;
    type Write = tokio::net::unix::OwnedWriteHalf;
    type Listener = tokio::net::UnixListener;

    fn bind(path: &Path) -> Self::Listener {
        tokio::net::UnixListener::bind(path).expect("bind")
    }

    async fn accept(l: &Self::Listener) -> Self::Stream {
        l.accept().await.expect("accept").0
    }

    async fn connect(path: PathBuf) -> Self::Stream {
        // A full accept backlog is `EAGAIN` for Unix sockets: retry, as any client must.
        loop {
            match tokio::net::UnixStream::connect(&path).await {
                Ok(s) => return s,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    tokio::time::sleep(Duration::from_millis(1)).await
                }
                Err(e) => panic!("connect: {e}"),
            }
        }
    }

    fn split(s: Self::Stream) -> (Self::Read, Self::Write) {
        s.into_split()
    }
}

/// `interprocess::local_socket::tokio::Stream`, a filesystem-path local socket.
pub struct Interprocess;

type IpStream = interprocess::local_socket::tokio::Stream;

/// One half of an `interprocess` stream: `&Stream` reads and writes, so an `Arc` shares it (as
/// the crate recommends instead of its deprecated `split`).
pub struct Shared(Arc<IpStream>);

impl AsyncRead for Shared {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let mut s: &IpStream = &self.0;
        Pin::new(&mut s).poll_read(cx, buf)
    }
}

impl AsyncWrite for Shared {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let mut s: &IpStream = &self.0;
        Pin::new(&mut s).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut s: &IpStream = &self.0;
        Pin::new(&mut s).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut s: &IpStream = &self.0;
        Pin::new(&mut s).poll_shutdown(cx)
    }
}

impl Transport for Interprocess {
    const NAME: &'static str = "interprocess";
    type Stream = IpStream;
    type Read = Shared;
    type Write = Shared;
    type Listener = interprocess::local_socket::tokio::Listener;

    fn bind(path: &Path) -> Self::Listener {
        let name = path.to_fs_name::<GenericFilePath>().expect("name");
        ListenerOptions::new().name(name).create_tokio().expect("bind")
    }

    async fn accept(l: &Self::Listener) -> Self::Stream {
        l.accept().await.expect("accept")
    }

    async fn connect(path: PathBuf) -> Self::Stream {
        let name = path.as_path().to_fs_name::<GenericFilePath>().expect("name");
        IpStream::connect(name).await.expect("connect")
    }

    fn split(s: Self::Stream) -> (Self::Read, Self::Write) {
        let s = Arc::new(s);
        (Shared(Arc::clone(&s)), Shared(s))
    }
}

/// Serves `conns` connections, each answering every request with [`msgs::small_reply`].
pub async fn server<T: Transport>(path: PathBuf, conns: usize, ready: Ready) {
    let listener = T::bind(&path);
    ready.send(()).expect("ready");
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..conns {
        let stream = T::accept(&listener).await;
        tasks.spawn(serve_connection::<T>(stream));
    }
    while tasks.join_next().await.is_some() {}
}

async fn serve_connection<T: Transport>(stream: T::Stream) {
    let (r, w) = T::split(stream);
    let requests = FramedRead::new(r, codec());
    let replies = FramedWrite::new(w, codec());
    let _ = requests
        .map(|frame| {
            let request: IpcMessage = serde_json::from_slice(&frame?).map_err(io::Error::other)?;
            let reply = match request {
                IpcMessage::Unsubscribe => IpcResponse::Success { message: "bye".into() },
                _ => msgs::small_reply(),
            };
            Ok(to_bytes(&reply))
        })
        .forward(replies)
        .await;
}

/// A client connection, split in two halves.
pub struct Client<T: Transport> {
    /// Replies in.
    pub rx: FramedRead<T::Read, LengthDelimitedCodec>,
    /// Requests out.
    pub tx: FramedWrite<T::Write, LengthDelimitedCodec>,
}

impl<T: Transport> Client<T> {
    /// Connects to `path`.
    pub async fn connect(path: PathBuf) -> Client<T> {
        let (r, w) = T::split(T::connect(path).await);
        Client { rx: FramedRead::new(r, codec()), tx: FramedWrite::new(w, codec()) }
    }

    /// Sends `request` and waits for its reply.
    pub async fn request(&mut self, request: &IpcMessage) -> IpcResponse {
        self.tx.send(to_bytes(request)).await.expect("send");
        let frame = self.rx.next().await.expect("reply").expect("frame");
        serde_json::from_slice(&frame).expect("json")
    }

    /// Sends `n` copies of `request` from a second task (fed, flushed once at the end) while
    /// this task reads the `n` replies; returns the time to the last reply.
    pub async fn pipelined(mut self, request: IpcMessage, n: u64) -> (Self, Duration) {
        let start = Instant::now();
        let mut tx = self.tx;
        let writer = tokio::spawn(async move {
            for _ in 0..n {
                tx.feed(to_bytes(&request)).await.expect("feed");
            }
            SinkExt::<Bytes>::flush(&mut tx).await.expect("flush");
            tx
        });
        for _ in 0..n {
            let frame = self.rx.next().await.expect("reply").expect("frame");
            let _: IpcResponse = serde_json::from_slice(&frame).expect("json");
        }
        self.tx = writer.await.expect("writer");
        (self, start.elapsed())
    }
}

/// Event fan-out by hand: the publisher serializes each event once and broadcasts the bytes;
/// each connection's task frames whatever is queued and flushes once per batch.
pub async fn fanout_server<T: Transport>(
    path: PathBuf,
    conns: usize,
    events: broadcast::Sender<Bytes>,
    ready: Ready,
) {
    let listener = T::bind(&path);
    ready.send(()).expect("ready");
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..conns {
        let stream = T::accept(&listener).await;
        let mut rx = events.subscribe();
        tasks.spawn(async move {
            let (_r, w) = T::split(stream);
            let mut sink = FramedWrite::new(w, codec());
            loop {
                let first = match rx.recv().await {
                    Ok(frame) => frame,
                    Err(broadcast::error::RecvError::Closed) => break,
                    Err(broadcast::error::RecvError::Lagged(n)) => panic!("lagged by {n}"),
                };
                if sink.feed(first).await.is_err() {
                    break;
                }
                while let Ok(frame) = rx.try_recv() {
                    if sink.feed(frame).await.is_err() {
                        return;
                    }
                }
                if SinkExt::<Bytes>::flush(&mut sink).await.is_err() {
                    break;
                }
            }
        });
    }
    drop(events);
    while tasks.join_next().await.is_some() {}
}

/// The receiving end of a fan-out subscriber.
pub struct Subscriber<T: Transport> {
    rx: FramedRead<T::Read, LengthDelimitedCodec>,
    _tx: T::Write,
}

impl<T: Transport> Subscriber<T> {
    /// Connects to `path`.
    pub async fn connect(path: PathBuf) -> Subscriber<T> {
        let (r, w) = T::split(T::connect(path).await);
        Subscriber { rx: FramedRead::new(r, codec()), _tx: w }
    }

    /// Receives and parses `n` events.
    pub async fn receive(mut self, n: u64) -> Self {
        for _ in 0..n {
            let frame = self.rx.next().await.expect("event").expect("frame");
            match serde_json::from_slice(&frame).expect("json") {
                IpcResponse::Event { .. } => {}
                other => panic!("not an event: {other:?}"),
            }
        }
        self
    }
}
