//! The hand-written alternatives, as a user would write them: `LengthDelimitedCodec` and
//! serde_json over tokio's `UnixStream` (`framed`) or `interprocess`' local socket, split into
//! `FramedRead`/`FramedWrite`; the server answers with `stream.map(..).forward(sink)`.

use super::msgs::{self, codec, to_bytes};
use super::{Ready, Res};
use bunctl_ipc::{IpcMessage, IpcResponse};
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use interprocess::local_socket::tokio::{Listener, prelude::*};
use interprocess::local_socket::{GenericFilePath, ListenerOptions};
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{UnixListener, UnixStream, unix};
use tokio::sync::broadcast;
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};

type Rx<R> = FramedRead<R, LengthDelimitedCodec>;
type Tx<W> = FramedWrite<W, LengthDelimitedCodec>;

async fn parse<R: AsyncRead + Unpin>(rx: &mut Rx<R>) -> Res<IpcResponse> {
    Ok(serde_json::from_slice(&rx.next().await.ok_or("closed")??)?)
}

pub trait Transport: Send + Sync + 'static {
    type Stream: AsyncRead + AsyncWrite + Send + Unpin + 'static;
    type Read: AsyncRead + Send + Unpin + 'static;
    type Write: AsyncWrite + Send + Unpin + 'static;
    type Listener: Send + Sync + 'static;
    fn bind(path: &Path) -> Self::Listener;
    fn accept(l: &Self::Listener) -> impl Future<Output = Self::Stream> + Send;
    fn connect(path: PathBuf) -> impl Future<Output = io::Result<Self::Stream>> + Send;
    fn split(s: Self::Stream) -> (Self::Read, Self::Write);
}

pub struct Tokio;

impl Transport for Tokio {
    type Stream = UnixStream;
    type Read = unix::OwnedReadHalf;
    type Write = unix::OwnedWriteHalf;
    type Listener = UnixListener;
    fn bind(path: &Path) -> UnixListener {
        UnixListener::bind(path).expect("bind")
    }
    async fn accept(l: &UnixListener) -> UnixStream {
        l.accept().await.expect("accept").0
    }
    fn split(s: UnixStream) -> (Self::Read, Self::Write) {
        s.into_split()
    }
    async fn connect(path: PathBuf) -> io::Result<UnixStream> {
        loop {
            match UnixStream::connect(&path).await {
                // A full accept backlog is `EAGAIN` for Unix sockets: retry, as any client must.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    tokio::time::sleep(Duration::from_millis(1)).await
                }
                result => return result,
            }
        }
    }
}

pub struct Interprocess;

type IpStream = interprocess::local_socket::tokio::Stream;

/// One half of an `interprocess` stream: `&Stream` reads and writes, so an `Arc` shares it (as
/// the crate recommends instead of its deprecated `split`).
pub struct Shared(Arc<IpStream>);

type Polled<T> = Poll<io::Result<T>>;

impl AsyncRead for Shared {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context, buf: &mut ReadBuf) -> Polled<()> {
        Pin::new(&mut &*self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for Shared {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context, buf: &[u8]) -> Polled<usize> {
        Pin::new(&mut &*self.0).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context) -> Polled<()> {
        Pin::new(&mut &*self.0).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context) -> Polled<()> {
        Pin::new(&mut &*self.0).poll_shutdown(cx)
    }
}

impl Transport for Interprocess {
    type Stream = IpStream;
    type Read = Shared;
    type Write = Shared;
    type Listener = Listener;
    fn bind(path: &Path) -> Listener {
        let name = path.to_fs_name::<GenericFilePath>().expect("name");
        ListenerOptions::new().name(name).create_tokio().expect("bind")
    }
    async fn accept(l: &Listener) -> IpStream {
        l.accept().await.expect("accept")
    }
    async fn connect(path: PathBuf) -> io::Result<IpStream> {
        IpStream::connect(path.as_path().to_fs_name::<GenericFilePath>()?).await
    }
    fn split(s: IpStream) -> (Shared, Shared) {
        let s = Arc::new(s);
        (Shared(Arc::clone(&s)), Shared(s))
    }
}

pub type Events = broadcast::Sender<Bytes>;

/// Serves every connection: answers requests or, given `events`, sends what is published there.
pub async fn server<T: Transport>(path: PathBuf, events: Option<Events>, ready: Ready) {
    let listener = T::bind(&path);
    ready.send(()).expect("ready");
    loop {
        let (r, w) = T::split(T::accept(&listener).await);
        let (requests, mut tx) = (FramedRead::new(r, codec()), FramedWrite::new(w, codec()));
        let Some(mut events) = events.as_ref().map(broadcast::Sender::subscribe) else {
            let replies = requests.map(|frame| {
                let request = serde_json::from_slice(&frame?).map_err(io::Error::other)?;
                io::Result::Ok(to_bytes(&msgs::reply_to(&request)))
            });
            tokio::spawn(replies.forward(tx));
            continue;
        };
        tokio::spawn(async move {
            let _requests = requests;
            while let Ok(first) = events.recv().await {
                tx.feed(first).await?;
                while let Ok(frame) = events.try_recv() {
                    tx.feed(frame).await?;
                }
                SinkExt::<Bytes>::flush(&mut tx).await?;
            }
            io::Result::Ok(())
        });
    }
}

pub struct Client<T: Transport>(Rx<T::Read>, Tx<T::Write>);

impl<T: Transport> super::Client for Client<T> {
    async fn connect(path: PathBuf) -> Res<Self> {
        let (r, w) = T::split(T::connect(path).await?);
        Ok(Client(FramedRead::new(r, codec()), FramedWrite::new(w, codec())))
    }
    async fn request(&mut self, request: &IpcMessage) -> Res<IpcResponse> {
        self.1.send(to_bytes(request)).await?;
        parse(&mut self.0).await
    }
    async fn pipelined(self, request: IpcMessage, n: u64) -> (Self, Duration) {
        let (start, Client(mut rx, mut tx)) = (Instant::now(), self);
        let writer = tokio::spawn(async move {
            for _ in 0..n {
                tx.feed(to_bytes(&request)).await.expect("feed");
            }
            SinkExt::<Bytes>::flush(&mut tx).await.expect("flush");
            tx
        });
        for _ in 0..n {
            parse(&mut rx).await.expect("reply");
        }
        (Client(rx, writer.await.expect("writer")), start.elapsed())
    }
    async fn events(mut self, n: u64) -> Self {
        for _ in 0..n {
            let event = parse(&mut self.0).await.expect("event");
            assert!(matches!(event, IpcResponse::Event { .. }), "not an event: {event:?}");
        }
        self
    }
}
