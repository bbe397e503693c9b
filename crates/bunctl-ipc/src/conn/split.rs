//! A connection in two halves, for a reader task and a writer task.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_core::Stream;
use futures_sink::Sink;
use ipc_proto::{IpcError, Result};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncRead, AsyncWrite};

#[cfg(doc)]
use super::Connection;
use super::{ConnectionPermit, FrameReader, FrameWriter, OpTimer};

/// A byte stream that can be divided into a read half and a write half owned by two tasks.
///
/// Implemented for the crate's Unix socket and named-pipe streams; implement it for your own stream
/// to use [`Connection::split`] with it.
pub trait SplitStream: AsyncRead + AsyncWrite + Sized {
    /// The reading half.
    type Read: AsyncRead + Unpin + Send + 'static;
    /// The writing half.
    type Write: AsyncWrite + Unpin + Send + 'static;
    /// Divides the stream.
    fn split_stream(self) -> (Self::Read, Self::Write);
}

/// The receiving half of a [`Connection`], from [`Connection::split`].
#[derive(Debug)]
pub struct RecvHalf<R, D> {
    pub(super) io: R,
    pub(super) reader: FrameReader<D>,
    pub(super) timer: OpTimer,
    pub(super) timeout: Duration,
    pub(super) _permit: Option<Arc<ConnectionPermit>>,
}

impl<R: AsyncRead + Unpin, D: DeserializeOwned> RecvHalf<R, D> {
    /// As [`Connection::recv`]. Cancel-safe.
    pub async fn recv(&mut self) -> Result<D> {
        self.reader.recv(&mut self.io, &mut self.timer, self.timeout).await
    }

    /// As [`Connection::poll_recv`]. Cancel-safe.
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Result<D>> {
        self.reader.poll_recv(cx, &mut self.io)
    }

    /// As [`Connection::has_partial_frame`].
    pub fn has_partial_frame(&self) -> bool {
        self.reader.has_partial_frame()
    }

    /// Sets the limit for each later `recv`.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }
}

/// The sending half of a [`Connection`], from [`Connection::split`].
#[derive(Debug)]
pub struct SendHalf<W, E> {
    pub(super) io: W,
    pub(super) writer: FrameWriter<E>,
    pub(super) timer: OpTimer,
    pub(super) timeout: Duration,
    pub(super) _permit: Option<Arc<ConnectionPermit>>,
}

impl<W: AsyncWrite + Unpin, E: Serialize> SendHalf<W, E> {
    /// As [`Connection::send`].
    pub async fn send(&mut self, message: &E) -> Result<()> {
        self.writer.send(&mut self.io, &mut self.timer, message, self.timeout).await
    }

    /// Sets the limit for each later `send`.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// True once a send failed part-way through a frame; every later send fails.
    pub fn is_poisoned(&self) -> bool {
        self.writer.poisoned
    }
}

impl<R: AsyncRead + Unpin, D: DeserializeOwned> Stream for RecvHalf<R, D> {
    type Item = Result<D>;

    /// Ends after a clean close or a non-recoverable error; recoverable errors are yielded and
    /// the stream goes on.
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<D>>> {
        let this = self.get_mut();
        this.reader.poll_next(cx, &mut this.io)
    }
}

impl<W: AsyncWrite + Unpin, E: Serialize> Sink<&E> for SendHalf<W, E> {
    type Error = IpcError;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let this = self.get_mut();
        this.writer.poll_ready(cx, &mut this.io)
    }

    fn start_send(self: Pin<&mut Self>, item: &E) -> Result<()> {
        self.get_mut().writer.queue(item)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let this = self.get_mut();
        this.writer.poll_flush(cx, &mut this.io)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let this = self.get_mut();
        this.writer.poll_close(cx, &mut this.io)
    }
}
