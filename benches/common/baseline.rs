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

use super::{Ready, Res, msgs};

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

/// The next frame, parsed.
async fn parse<R, T>(rx: &mut FramedRead<R, LengthDelimitedCodec>) -> Res<T>
where
    R: AsyncRead + Unpin,
    T: serde::de::DeserializeOwned,
{
    Ok(serde_json::from_slice(&rx.next().await.ok_or("closed")??)?)
}

/// A byte stream to run the framing over.
pub trait Transport: Send + Sync + 'static {
    type Stream: AsyncRead + AsyncWrite + Send + Unpin + 'static;
    type Read: AsyncRead + Send + Unpin + 'static;
    type Write: AsyncWrite + Send + Unpin + 'static;
    type Listener: Send + Sync + 'static;
    /// Binds `path` (inside a runtime).
    fn bind(path: &Path) -> Self::Listener;
    fn accept(l: &Self::Listener) -> impl Future<Output = Self::Stream> + Send;
    fn connect(path: PathBuf) -> impl Future<Output = io::Result<Self::Stream>> + Send;
    /// Splits a stream into owned halves.
    fn split(s: Self::Stream) -> (Self::Read, Self::Write);
}

/// tokio's `UnixStream`.
pub struct Tokio;

impl Transport for Tokio {
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

    async fn connect(path: PathBuf) -> io::Result<Self::Stream> {
        // A full accept backlog is `EAGAIN` for Unix sockets: retry, as any client must.
        loop {
            match tokio::net::UnixStream::connect(&path).await {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    tokio::time::sleep(Duration::from_millis(1)).await
                }
                result => return result,
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
        cx: &mut Context,
        buf: &mut ReadBuf,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut &*self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for Shared {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut &*self.0).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context) -> Poll<io::Result<()>> {
        Pin::new(&mut &*self.0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context) -> Poll<io::Result<()>> {
        Pin::new(&mut &*self.0).poll_shutdown(cx)
    }
}

impl Transport for Interprocess {
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

    async fn connect(path: PathBuf) -> io::Result<Self::Stream> {
        IpStream::connect(path.as_path().to_fs_name::<GenericFilePath>()?).await
    }

    fn split(s: Self::Stream) -> (Self::Read, Self::Write) {
        let s = Arc::new(s);
        (Shared(Arc::clone(&s)), Shared(s))
    }
}

/// Serves every connection, answering each request with [`msgs::reply_to`].
pub async fn server<T: Transport>(path: PathBuf, ready: Ready) {
    let listener = T::bind(&path);
    ready.send(()).expect("ready");
    loop {
        let (r, w) = T::split(T::accept(&listener).await);
        let replies = FramedRead::new(r, codec()).map(|frame| {
            let request: IpcMessage = serde_json::from_slice(&frame?).map_err(io::Error::other)?;
            io::Result::Ok(to_bytes(&msgs::reply_to(&request)))
        });
        tokio::spawn(replies.forward(FramedWrite::new(w, codec())));
    }
}

/// A client connection, split in two halves.
pub struct Client<T: Transport> {
    rx: FramedRead<T::Read, LengthDelimitedCodec>,
    tx: FramedWrite<T::Write, LengthDelimitedCodec>,
}

impl<T: Transport> super::Client for Client<T> {
    async fn connect(path: PathBuf) -> Res<Self> {
        let (r, w) = T::split(T::connect(path).await?);
        Ok(Client { rx: FramedRead::new(r, codec()), tx: FramedWrite::new(w, codec()) })
    }

    async fn request(&mut self, request: &IpcMessage) -> Res {
        self.tx.send(to_bytes(request)).await?;
        parse::<_, IpcResponse>(&mut self.rx).await.map(drop)
    }

    async fn pipelined(mut self, request: IpcMessage, n: u64) -> (Self, Duration) {
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
            parse::<_, IpcResponse>(&mut self.rx).await.expect("reply");
        }
        self.tx = writer.await.expect("writer");
        (self, start.elapsed())
    }

    async fn events(mut self, n: u64) -> Self {
        for _ in 0..n {
            let event = parse(&mut self.rx).await.expect("event");
            assert!(matches!(event, IpcResponse::Event { .. }), "not an event: {event:?}");
        }
        self
    }
}

/// Event fan-out by hand: the publisher serializes each event once and broadcasts the bytes;
/// each connection's task frames whatever is queued and flushes once per batch.
pub async fn fanout_server<T: Transport>(
    path: PathBuf,
    events: broadcast::Sender<Bytes>,
    ready: Ready,
) {
    let listener = T::bind(&path);
    ready.send(()).expect("ready");
    loop {
        let stream = T::accept(&listener).await;
        let mut rx = events.subscribe();
        tokio::spawn(async move {
            let (_r, w) = T::split(stream);
            let mut sink = FramedWrite::new(w, codec());
            while let Ok(first) = rx.recv().await {
                sink.feed(first).await?;
                while let Ok(frame) = rx.try_recv() {
                    sink.feed(frame).await?;
                }
                SinkExt::<Bytes>::flush(&mut sink).await?;
            }
            io::Result::Ok(())
        });
    }
}
