//! The bunctl IPC protocol, with no sockets and no runtime attached.
//!
//! bunctl's CLI and daemon exchange JSON messages over a local stream (a Unix domain socket or a
//! Windows named pipe). This crate holds everything about those messages that does not depend on
//! the stream: the message enums, the limits, the error type, the event filter and the framer.
//!
//! # The wire in one picture
//!
//! Every message travels as one frame: a 4-byte little-endian length, then exactly that many bytes
//! of UTF-8 JSON.
//!
//! ```text
//! +---------------------+--------------------------------------+
//! | length: u32 (LE)    | payload: `length` bytes of JSON      |
//! +---------------------+--------------------------------------+
//!
//! IpcMessage::List on the wire (10 bytes):
//!   06 00 00 00  22 4c 69 73 74 22
//!   len = 6      "  L  i  s  t  "
//! ```
//!
//! The JSON is serde's default ("externally tagged") representation of [`IpcMessage`] (client to
//! server) and [`IpcResponse`] (server to client): unit variants are bare strings (`"List"`), the
//! others are one-key objects (`{"Stop":{"name":"web"}}`). The payload length must be between 1
//! and [`MAX_MESSAGE_SIZE`] bytes, inclusive; the header is not counted. `WIRE.md` at the root of
//! the repository documents every message and the error behaviour for other implementations.
//!
//! # Protocol 1
//!
//! Besides the protocol 0 messages ([`IpcMessage`] and [`IpcResponse`]), servers built on
//! bunctl-ipc answer [`Hello`] (who they are, what they support: a [`ServerInfo`]) and
//! [`Follow`] (history or everything after a [`Cursor`], then live events). [`Request`] is what
//! such a server reads; the [`protocol`] module says how a client tells an old server.
//!
//! # Getting started
//!
//! Tools without an async runtime use [`blocking::write_message`] and
//! [`blocking::read_message`] over any `std::io::Write` / `std::io::Read`:
//!
//! ```
//! use ipc_proto::{IpcMessage, blocking};
//!
//! # fn main() -> Result<(), ipc_proto::IpcError> {
//! let mut wire = Vec::new();
//! blocking::write_message(&mut wire, &IpcMessage::Stop { name: "web".into() })?;
//! assert_eq!(&wire[..4], &23u32.to_le_bytes());
//! assert_eq!(&wire[4..], br#"{"Stop":{"name":"web"}}"#.as_slice());
//!
//! let msg: IpcMessage = blocking::read_message(&mut wire.as_slice())?;
//! assert_eq!(msg, IpcMessage::Stop { name: "web".into() });
//! # Ok(())
//! # }
//! ```
//!
//! With the `codec` feature (on by default), `IpcCodec` is a `tokio_util::codec` `Decoder` +
//! `Encoder` with the same limits and errors, so it plugs into `Framed`, `FramedRead` and
//! `FramedWrite` over any byte stream:
//!
//! ```
//! # #[cfg(feature = "codec")]
//! # fn main() -> Result<(), ipc_proto::IpcError> {
//! use bytes::BytesMut;
//! use ipc_proto::{ClientCodec, IpcMessage, ServerCodec};
//! use tokio_util::codec::{Decoder, Encoder};
//!
//! // The client encodes an IpcMessage ...
//! let mut wire = BytesMut::new();
//! ClientCodec::new().encode(&IpcMessage::Stop { name: "web".into() }, &mut wire)?;
//!
//! // ... and the server decodes it.
//! let msg = ServerCodec::new().decode(&mut wire)?;
//! assert_eq!(msg, Some(IpcMessage::Stop { name: "web".into() }));
//! assert!(wire.is_empty());
//! # Ok(())
//! # }
//! # #[cfg(not(feature = "codec"))]
//! # fn main() {}
//! ```
//!
//! # Features
//!
//! * `codec` (default): [`IpcCodec`], [`ClientCodec`] and [`ServerCodec`], which pull in
//!   `tokio-util` (and through it `tokio`). Without it (`default-features = false`) the crate
//!   still has the messages, the errors, the limits, the event filter and the blocking helpers,
//!   and depends only on `bytes`, `serde`, `serde_json` and `thiserror`.
//!
//! # Errors are data
//!
//! Everything a peer can get wrong is an [`IpcError`] variant, never a panic: a length over the
//! limit ([`IpcError::FrameTooLarge`]), a zero length ([`IpcError::EmptyFrame`]), JSON that does
//! not parse or has the wrong shape ([`IpcError::InvalidMessage`]), a stream that ends inside a
//! frame ([`IpcError::Truncated`]). [`IpcError::is_recoverable`] tells whether the stream is still
//! in sync afterwards.
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]
// Without `codec`, the items the docs link to for it do not exist.
#![cfg_attr(not(feature = "codec"), allow(rustdoc::broken_intra_doc_links))]

/// The README's examples, compiled and run as doctests so that they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

pub mod blocking;
#[cfg(feature = "codec")]
mod codec;
mod error;
pub mod event;
mod frame;
mod message;
pub mod protocol;

#[cfg(feature = "codec")]
#[cfg_attr(docsrs, doc(cfg(feature = "codec")))]
pub use codec::{ClientCodec, IpcCodec, ServerCodec};
pub use error::{EndpointStep, IpcError, Operation, Result};
pub use frame::FrameConfig;
pub use message::{IpcMessage, IpcResponse, SubscriptionType};
pub use protocol::{
    Cursor, FEATURE_FOLLOW, Follow, FollowStart, Hello, PROTOCOL_VERSION, Request, ServerInfo,
};

use std::time::Duration;

/// The largest payload a frame may carry, in bytes: 10 MiB.
///
/// This counts the JSON payload only, not the 4-byte header. A payload of exactly this size is
/// accepted; one byte more is rejected with [`IpcError::FrameTooLarge`] — on the receiving side
/// before any memory is reserved for it, on the sending side before anything is written.
/// [`FrameConfig::with_max_message_size`] sets a different limit per codec.
pub const MAX_MESSAGE_SIZE: usize = 10 * 1024 * 1024;

/// The time a single send or receive may take before it fails with [`IpcError::Timeout`]: 30 s.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Size of the frame header: the little-endian `u32` payload length.
pub const HEADER_LEN: usize = 4;
