//! The length-prefixed JSON framer.
//!
//! ```text
//!  offset 0          4                                4 + length
//!         +----------+--------------------------------+
//!         | length   | payload                        |
//!         | u32, LE  | `length` bytes of UTF-8 JSON   |
//!         +----------+--------------------------------+
//! ```
//!
//! Decoding is a two-state machine: read the 4-byte header, check it against the limit, make
//! room for the body as it arrives, parse it. Encoding is the one the blocking helpers use too
//! (`frame::encode`).

use std::fmt;
use std::marker::PhantomData;

use bytes::{Buf, Bytes, BytesMut};
use serde::{Serialize, de::DeserializeOwned};
use tokio_util::codec::{Decoder, Encoder};

use crate::frame::{self, FrameConfig};
use crate::{HEADER_LEN, IpcError, IpcMessage, IpcResponse, Operation, Result};

/// Room reserved for a body when its header arrives: the whole body if it is smaller, else this
/// much. The header alone is only a claim; memory beyond this follows the bytes that arrive.
pub(crate) const FIRST_BODY_RESERVE: usize = 64 * 1024;

/// A body in progress always has at least this much spare room (or all it still needs), so
/// that reads stay large.
const MIN_SPARE: usize = 8 * 1024;

/// Where the decoder is within the current frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DecodeState {
    /// Waiting for the 4 header bytes.
    Head,
    /// Header consumed; waiting for this many payload bytes (a length from a header: `u32`).
    /// The second number is the capacity of the buffer this decoder allocated for the body
    /// (0 until it allocated one).
    Body(u32, u32),
    /// A header claimed this oversize length; the stream is beyond repair.
    Broken(u32),
}

/// A `tokio_util::codec` [`Decoder`] of `D` and [`Encoder`] of `E`, for `[u32 LE length][JSON]`
/// frames.
///
/// `D` and `E` are the two directions: the server decodes [`IpcMessage`] and encodes
/// [`IpcResponse`] ([`ServerCodec`]); the client does the opposite ([`ClientCodec`]). Any serde
/// types work, which makes the framer usable for other protocols too.
///
/// What a caller can rely on:
///
/// * **Limits before allocation.** A header is checked against
///   [`FrameConfig::max_message_size`] before anything is reserved. An oversize header is fatal for
///   the stream ([`IpcError::FrameTooLarge`] from this and every later `decode`).
/// * **Memory follows the bytes, not the claim.** When a body starts, at most 96 KiB is reserved;
///   beyond that, memory grows only with the bytes that actually arrive, up to exactly the
///   frame's size. A peer that sends a header claiming 10 MiB and then nothing holds at most
///   96 KiB, not 10 MiB, and the buffer never grows past `max + 4` bytes on a frame's account.
/// * **Stays in sync.** A zero-length frame ([`IpcError::EmptyFrame`]) or a whole frame of invalid
///   JSON ([`IpcError::InvalidMessage`]) is consumed exactly, and the next frame decodes normally.
/// * **Cancel-safe.** Partial input stays in the buffer and in the codec's state; feeding the rest
///   later gives the same result as feeding it all at once.
/// * **Clean failures on encode.** A value whose JSON passes the limit stops serializing as soon
///   as it does, and a failed encode removes everything it wrote: `dst` is as it was.
/// * **Small when idle.** After a frame is consumed and the buffer is empty, a buffer larger than
///   [`FrameConfig::shrink_threshold`] is released — or, with
///   [`with_buffer_reuse`](Self::with_buffer_reuse), kept for the next frame until the caller
///   gives it back with [`release_idle_buffer`](Self::release_idle_buffer).
///
/// With `tokio_util::codec::Framed`:
///
/// ```
/// use futures::{SinkExt, StreamExt};
/// use ipc_proto::{ClientCodec, IpcMessage, IpcResponse, ServerCodec};
/// use tokio_util::codec::{FramedRead, FramedWrite};
///
/// # futures::executor::block_on(async {
/// let mut wire = Vec::new();
/// let mut tx = FramedWrite::new(&mut wire, ServerCodec::new());
/// tx.send(&IpcResponse::Success { message: "started".into() }).await?;
///
/// let mut rx = FramedRead::new(wire.as_slice(), ClientCodec::new());
/// let reply = rx.next().await.expect("one frame")?;
/// assert_eq!(reply, IpcResponse::Success { message: "started".into() });
/// assert!(rx.next().await.is_none()); // clean end of stream
/// # Ok::<(), ipc_proto::IpcError>(())
/// # }).unwrap();
/// # let _ = IpcMessage::List;
/// ```
pub struct IpcCodec<D, E> {
    config: FrameConfig,
    state: DecodeState,
    /// Largest read-buffer capacity seen since the buffer was last released. `BytesMut` reports
    /// capacity from its read position, so an emptied buffer looks small even when it still owns
    /// a large allocation; this remembers how large it really got.
    /// (`u32`, saturating: a threshold is a `u32` too, and every connection carries one.)
    peak_capacity: u32,
    /// The buffer is kept between frames; the caller releases it (`release_idle_buffer`).
    reuse: bool,
    _types: PhantomData<fn(&E) -> D>,
}

/// The server's codec: decodes [`IpcMessage`], encodes [`IpcResponse`].
pub type ServerCodec = IpcCodec<IpcMessage, IpcResponse>;
/// The client's codec: decodes [`IpcResponse`], encodes [`IpcMessage`].
pub type ClientCodec = IpcCodec<IpcResponse, IpcMessage>;

impl<D, E> IpcCodec<D, E> {
    /// A codec with the default [`FrameConfig`].
    pub const fn new() -> Self {
        Self::with_config(FrameConfig::new())
    }

    /// A codec with the given limits.
    pub const fn with_config(config: FrameConfig) -> Self {
        IpcCodec {
            config,
            state: DecodeState::Head,
            peak_capacity: 0,
            reuse: false,
            _types: PhantomData,
        }
    }

    /// The limits in force.
    pub fn config(&self) -> FrameConfig {
        self.config
    }

    /// Replaces the limits; they apply from the next frame header on.
    pub fn set_config(&mut self, config: FrameConfig) {
        self.config = config;
    }

    /// True while the decoder holds part of a frame (its header has been consumed).
    pub fn is_mid_frame(&self) -> bool {
        matches!(self.state, DecodeState::Body(..))
    }

    /// Keeps (`true`) or releases (`false`, the default) a large read buffer once a frame is
    /// consumed. Kept, the next frame's body is read into the buffer the previous body grew,
    /// so back-to-back large frames are read into one allocation instead of one each (and the
    /// room for the next frame's header is included); the caller gives it back with
    /// [`release_idle_buffer`](Self::release_idle_buffer) when it is about to wait for input.
    /// For callers that own their buffer and know when they are about to wait: under `Framed`,
    /// which never calls it, the buffer would stay at its largest.
    pub fn with_buffer_reuse(mut self, reuse: bool) -> Self {
        self.reuse = reuse;
        self
    }

    /// True when `buf`, as this decoder last saw it, holds an allocation above
    /// [`FrameConfig::shrink_threshold`] (which an empty `BytesMut` does not show).
    pub fn holds_large_buffer(&self) -> bool {
        self.peak_capacity as usize > self.config.shrink_threshold()
    }

    /// Releases `buf` if it is empty and holds an allocation above
    /// [`FrameConfig::shrink_threshold`]: what the decoder does after each frame unless
    /// [`with_buffer_reuse`](Self::with_buffer_reuse) asks it to leave that to the caller.
    pub fn release_idle_buffer(&mut self, buf: &mut BytesMut) {
        if buf.is_empty() && self.holds_large_buffer() {
            *buf = BytesMut::new();
            self.peak_capacity = 0;
        }
    }

    /// The same codec state (limits, a frame in progress, buffer policy) for other message types,
    /// e.g. to go on decoding a stream as other types.
    pub fn cast<D2, E2>(self) -> IpcCodec<D2, E2> {
        self.retyped()
    }

    /// A copy of the state, for other message types.
    fn retyped<D2, E2>(&self) -> IpcCodec<D2, E2> {
        IpcCodec {
            config: self.config,
            state: self.state,
            peak_capacity: self.peak_capacity,
            reuse: self.reuse,
            _types: PhantomData,
        }
    }

    fn note_capacity(&mut self, buf: &BytesMut) {
        let capacity = u32::try_from(buf.capacity()).unwrap_or(u32::MAX);
        self.peak_capacity = self.peak_capacity.max(capacity);
    }

    /// After a frame: releases an idle buffer, unless the caller does.
    fn release_if_idle(&mut self, buf: &mut BytesMut) {
        if !self.reuse {
            self.release_idle_buffer(buf);
        }
    }
}

impl<D, E> Default for IpcCodec<D, E> {
    fn default() -> Self {
        Self::new()
    }
}

impl<D, E> Clone for IpcCodec<D, E> {
    fn clone(&self) -> Self {
        self.retyped()
    }
}

impl<D, E> fmt::Debug for IpcCodec<D, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IpcCodec")
            .field("config", &self.config)
            .field("state", &self.state)
            .finish()
    }
}

/// Makes room in `buf` for more of a body of `len` bytes, of which `buf` holds the start: up
/// to [`FIRST_BODY_RESERVE`] at first, then twice what has arrived, never past `len` (and all of
/// `len` when less than half a step more would be left, so at most 96 KiB for a bare header). `ours` is
/// the capacity of the buffer allocated here for this body (0 before the first); the new one's
/// is returned. `headroom` more is made when the room reaches the whole body (the next frame's
/// header, for a buffer that is kept).
fn reserve_body(buf: &mut BytesMut, len: usize, ours: usize, headroom: usize) -> usize {
    let spare = buf.capacity() - buf.len();
    let missing = len.saturating_sub(buf.len());
    if spare >= missing.min(MIN_SPARE) {
        return ours;
    }
    let mut target = len.min(buf.len().saturating_mul(2).max(FIRST_BODY_RESERVE));
    if len - target < target / 2 {
        // A last step this small would cost a copy for a few bytes: take the whole frame now.
        target = len;
    }
    if target == len {
        target += headroom;
    }
    if ours == 0 || buf.capacity() != ours {
        // The first room for this body: a buffer of exactly `target`, holding the few bytes
        // that arrived with the header (the caller's buffer may be larger than it looks, with
        // consumed frames in front, and must not be taken over whole).
        let mut fresh = BytesMut::with_capacity(target);
        fresh.extend_from_slice(buf);
        *buf = fresh;
    } else {
        // Growing our own buffer: `Vec::reserve_exact` grows it to exactly `target` (where
        // `BytesMut::reserve` might double it), and the conversions there and back do not
        // copy the bytes.
        let mut vec = Vec::from(std::mem::take(buf));
        vec.reserve_exact(target - vec.len());
        *buf = Bytes::from(vec).try_into_mut().unwrap_or_else(|shared| BytesMut::from(&shared[..]));
    }
    buf.capacity()
}

impl<D: DeserializeOwned, E> Decoder for IpcCodec<D, E> {
    type Item = D;
    type Error = IpcError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<D>> {
        self.note_capacity(src);
        let len = match self.state {
            DecodeState::Broken(size) => {
                return Err(IpcError::FrameTooLarge {
                    size: size as usize,
                    max: self.config.max_message_size(),
                    operation: Operation::Receive,
                });
            }
            DecodeState::Head => {
                if src.len() < HEADER_LEN {
                    return Ok(None);
                }
                let header = u32::from_le_bytes([src[0], src[1], src[2], src[3]]);
                let len = header as usize;
                if let Err(e) = self.config.check_len(len, Operation::Receive) {
                    if let IpcError::FrameTooLarge { .. } = e {
                        self.state = DecodeState::Broken(header);
                        // Nothing after a lying header can be trusted; drop what was buffered.
                        *src = BytesMut::new();
                        self.peak_capacity = 0;
                    } else {
                        src.advance(HEADER_LEN);
                        self.release_if_idle(src);
                    }
                    return Err(e);
                }
                src.advance(HEADER_LEN);
                // A buffer kept from an earlier body is this decoder's own, to grow in place.
                let ours = if self.reuse && self.holds_large_buffer() { src.capacity() } else { 0 };
                self.state = DecodeState::Body(header, u32::try_from(ours).unwrap_or(0));
                len
            }
            DecodeState::Body(len, _) => len as usize,
        };
        if src.len() < len {
            if let DecodeState::Body(header, ours) = self.state {
                let headroom = if self.reuse { HEADER_LEN } else { 0 };
                let room = reserve_body(src, len, ours as usize, headroom);
                // `room <= len <= u32::MAX`: it fits.
                self.state = DecodeState::Body(header, u32::try_from(room).unwrap_or(u32::MAX));
            }
            self.note_capacity(src);
            return Ok(None);
        }
        self.state = DecodeState::Head;
        let parsed = serde_json::from_slice(&src[..len]);
        src.advance(len);
        self.release_if_idle(src);
        parsed.map(Some).map_err(IpcError::InvalidMessage)
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<D>> {
        if let Some(item) = self.decode(buf)? {
            return Ok(Some(item));
        }
        match self.state {
            DecodeState::Head if buf.is_empty() => Ok(None),
            DecodeState::Head => {
                Err(IpcError::Truncated { received: buf.len(), expected: HEADER_LEN })
            }
            DecodeState::Body(len, _) => Err(IpcError::Truncated {
                received: HEADER_LEN + buf.len(),
                expected: HEADER_LEN + len as usize,
            }),
            DecodeState::Broken(size) => Err(IpcError::FrameTooLarge {
                size: size as usize,
                max: self.config.max_message_size(),
                operation: Operation::Receive,
            }),
        }
    }
}

impl<D, E: Serialize> Encoder<&E> for IpcCodec<D, E> {
    type Error = IpcError;

    fn encode(&mut self, item: &E, dst: &mut BytesMut) -> Result<()> {
        frame::encode(item, dst, &self.config)
    }
}

impl<D, E: Serialize> Encoder<E> for IpcCodec<D, E> {
    type Error = IpcError;

    fn encode(&mut self, item: E, dst: &mut BytesMut) -> Result<()> {
        Encoder::<&E>::encode(self, &item, dst)
    }
}

#[cfg(test)]
mod tests;
