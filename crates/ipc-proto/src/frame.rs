//! What every frame obeys, with or without the codec: the limits ([`FrameConfig`]) and the
//! encoder that writes one frame into a buffer (used by the codec and by the blocking helpers).

use std::io;

use bytes::{BufMut, BytesMut};
use serde::Serialize;

use crate::{HEADER_LEN, IpcError, MAX_MESSAGE_SIZE, Operation, Result};

/// Limits shared by the codec, the blocking helpers and the connections built on them.
///
/// ```
/// use ipc_proto::{FrameConfig, IpcMessage, blocking};
///
/// let config = FrameConfig::new().with_max_message_size(64 * 1024);
/// assert_eq!(config.max_message_size(), 64 * 1024);
///
/// let mut wire = Vec::new();
/// let big = IpcMessage::Start { name: "web".into(), config: "x".repeat(64 * 1024) };
/// assert!(blocking::write_message_with(&mut wire, &big, config).is_err());
/// assert!(wire.is_empty());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameConfig {
    // `u32`: a header cannot express more, and every connection carries two of these.
    max_message_size: u32,
    shrink_threshold: u32,
}

impl FrameConfig {
    /// The defaults: payloads up to [`MAX_MESSAGE_SIZE`], and a read buffer released once it is
    /// empty and holds more than 64 KiB.
    pub const fn new() -> Self {
        FrameConfig { max_message_size: MAX_MESSAGE_SIZE as u32, shrink_threshold: 64 * 1024 }
    }

    /// Sets the largest accepted payload, in bytes (the header is not counted).
    ///
    /// Values above `u32::MAX` are clamped to it, since the header cannot express more; `0`
    /// rejects every frame.
    pub const fn with_max_message_size(mut self, max: usize) -> Self {
        self.max_message_size = clamp_u32(max);
        self
    }

    /// Sets the capacity above which an *empty* read buffer is released after a frame has been
    /// consumed, so that one large message does not pin megabytes to an idle connection.
    /// `0` releases the buffer whenever it empties; values above `u32::MAX` are clamped to it
    /// (a buffer never grows that large: frames are at most `u32::MAX + 4` bytes).
    pub const fn with_shrink_threshold(mut self, bytes: usize) -> Self {
        self.shrink_threshold = clamp_u32(bytes);
        self
    }

    /// The largest accepted payload, in bytes.
    pub const fn max_message_size(&self) -> usize {
        self.max_message_size as usize
    }

    /// The capacity above which an empty read buffer is released.
    pub const fn shrink_threshold(&self) -> usize {
        self.shrink_threshold as usize
    }

    /// Checks a payload length against the limit, for a frame going in the direction of
    /// `operation` ([`Operation::Receive`] for a header that arrived, [`Operation::Send`] for a
    /// frame about to be written): [`IpcError::EmptyFrame`] for 0, [`IpcError::FrameTooLarge`]
    /// above the limit.
    pub fn check_len(&self, len: usize, operation: Operation) -> Result<()> {
        if len == 0 {
            Err(IpcError::EmptyFrame)
        } else if len > self.max_message_size() {
            Err(IpcError::FrameTooLarge { size: len, max: self.max_message_size(), operation })
        } else {
            Ok(())
        }
    }
}

const fn clamp_u32(n: usize) -> u32 {
    if n > u32::MAX as usize { u32::MAX } else { n as u32 }
}

impl Default for FrameConfig {
    fn default() -> Self {
        FrameConfig::new()
    }
}

/// An `io::Write` into a `BytesMut` that refuses to go past a payload limit.
///
/// Passed to serde_json by value and fully inlined: serde_json writes every token separately, so
/// an out-of-line call per write (through `&mut W`, or across the crate boundary: the encoder is
/// instantiated in the caller's crate) costs more than the copy itself.
struct LimitedWriter<'a> {
    dst: &'a mut BytesMut,
    /// `dst.len()` may not pass this: the payload's start plus the limit.
    end: usize,
    payload_start: usize,
    /// Set to the payload size that would have resulted when a write is refused.
    overflow: &'a mut Option<usize>,
}

impl LimitedWriter<'_> {
    /// Out of line, so that the hot path stays small enough to inline.
    #[cold]
    #[inline(never)]
    fn refuse(&mut self, chunk_len: usize) -> io::Error {
        *self.overflow = Some(self.dst.len() - self.payload_start + chunk_len);
        io::Error::other("frame limit reached")
    }
}

impl io::Write for LimitedWriter<'_> {
    #[inline]
    fn write(&mut self, chunk: &[u8]) -> io::Result<usize> {
        self.write_all(chunk).map(|()| chunk.len())
    }

    #[inline]
    fn write_all(&mut self, chunk: &[u8]) -> io::Result<()> {
        // `end - len` cannot underflow: `len <= end` holds after every accepted write.
        if chunk.len() > self.end - self.dst.len() {
            return Err(self.refuse(chunk.len()));
        }
        self.dst.extend_from_slice(chunk);
        Ok(())
    }

    #[inline]
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Appends `item` to `dst` as one frame: a placeholder header, the JSON serialized straight
/// behind it, then the length patched in. A value whose JSON passes `config`'s limit stops
/// serializing as soon as it does; on any failure `dst` is as it was.
pub(crate) fn encode<T: Serialize + ?Sized>(
    item: &T,
    dst: &mut BytesMut,
    config: &FrameConfig,
) -> Result<()> {
    let frame_start = dst.len();
    dst.reserve(HEADER_LEN + 64);
    dst.put_u32_le(0);
    let payload_start = frame_start + HEADER_LEN;
    let mut overflow = None;
    let w = LimitedWriter {
        dst: &mut *dst,
        end: payload_start.saturating_add(config.max_message_size()),
        payload_start,
        overflow: &mut overflow,
    };
    if let Err(e) = serde_json::to_writer(w, item) {
        dst.truncate(frame_start);
        return Err(match overflow {
            Some(size) => IpcError::FrameTooLarge {
                size,
                max: config.max_message_size(),
                operation: Operation::Send,
            },
            None => IpcError::Encode(e),
        });
    }
    let len = dst.len() - frame_start - HEADER_LEN;
    // serde_json never produces an empty document, but a frame of 0 would be rejected by
    // every peer: keep the invariant local.
    if len == 0 {
        dst.truncate(frame_start);
        return Err(IpcError::EmptyFrame);
    }
    // `len <= max <= u32::MAX` by construction of FrameConfig.
    dst[frame_start..frame_start + HEADER_LEN].copy_from_slice(&(len as u32).to_le_bytes());
    Ok(())
}
