//! Reading and writing single frames over `std::io`, for tools without an async runtime.
//!
//! Same wire, limits and errors as the codec (`IpcCodec`, feature `codec`); these need neither
//! tokio nor tokio-util:
//!
//! ```
//! use ipc_proto::{FrameConfig, IpcMessage, blocking};
//!
//! # fn main() -> Result<(), ipc_proto::IpcError> {
//! let mut wire = Vec::new();
//! blocking::write_message(&mut wire, &IpcMessage::List)?;
//! assert_eq!(wire, b"\x06\x00\x00\x00\"List\"");
//!
//! let msg: IpcMessage = blocking::read_message(&mut wire.as_slice())?;
//! assert_eq!(msg, IpcMessage::List);
//!
//! // The end of the stream between frames is `Closed`, not an I/O error.
//! let eof = blocking::read_message::<IpcMessage, _>(&mut &b""[..]);
//! assert!(matches!(eof, Err(ipc_proto::IpcError::Closed)));
//! # let _ = FrameConfig::new();
//! # Ok(())
//! # }
//! ```

use std::io::{self, Read, Write};

use bytes::BytesMut;
use serde::{Serialize, de::DeserializeOwned};

use crate::{FrameConfig, HEADER_LEN, IpcError, Operation, Result, frame};

/// Writes `msg` as one frame with the default limits, in a single `write_all`.
pub fn write_message<T: Serialize, W: Write>(w: &mut W, msg: &T) -> Result<()> {
    write_message_with(w, msg, FrameConfig::new())
}

/// Writes `msg` as one frame with the given limits. Nothing is written if encoding fails.
pub fn write_message_with<T: Serialize, W: Write>(
    w: &mut W,
    msg: &T,
    config: FrameConfig,
) -> Result<()> {
    let mut buf = BytesMut::new();
    frame::encode(msg, &mut buf, &config)?;
    w.write_all(&buf)?;
    w.flush()?;
    Ok(())
}

/// Reads one frame with the default limits and parses it as `T`.
pub fn read_message<T: DeserializeOwned, R: Read>(r: &mut R) -> Result<T> {
    read_message_with(r, FrameConfig::new())
}

/// Reads one frame with the given limits and parses it as `T`.
///
/// Reads exactly the frame's bytes and no more, so the reader stays positioned on the next
/// frame — also after [`IpcError::InvalidMessage`] and [`IpcError::EmptyFrame`]. An oversize
/// header is rejected after reading only the header. Memory for the body grows with the bytes
/// that actually arrive, not with what the header claims.
pub fn read_message_with<T: DeserializeOwned, R: Read>(
    r: &mut R,
    config: FrameConfig,
) -> Result<T> {
    let mut header = [0u8; HEADER_LEN];
    let got = read_full(r, &mut header)?;
    if got == 0 {
        return Err(IpcError::Closed);
    }
    if got < HEADER_LEN {
        return Err(IpcError::Truncated { received: got, expected: HEADER_LEN });
    }
    let len = u32::from_le_bytes(header) as usize;
    config.check_len(len, Operation::Receive)?;
    let mut body = Vec::with_capacity(len.min(64 * 1024));
    let got = r.take(len as u64).read_to_end(&mut body)?;
    if got < len {
        return Err(IpcError::Truncated { received: HEADER_LEN + got, expected: HEADER_LEN + len });
    }
    serde_json::from_slice(&body).map_err(IpcError::InvalidMessage)
}

/// Fills `buf` as far as the reader allows; returns how many bytes were read (short only at EOF).
fn read_full<R: Read>(r: &mut R, buf: &mut [u8]) -> Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{IpcMessage, IpcResponse};
    use std::io::Cursor;

    #[test]
    fn oversize_header_is_rejected_after_reading_only_the_header() {
        let mut wire = Cursor::new(vec![0xff, 0xff, 0xff, 0xff, b'{', b'}']);
        let e = read_message::<IpcMessage, _>(&mut wire).expect_err("oversize");
        assert!(matches!(e, IpcError::FrameTooLarge { size: 0xffff_ffff, .. }), "{e}");
        assert_eq!(wire.position(), 4);
    }

    #[test]
    fn invalid_json_frame_does_not_desync_the_reader() {
        let mut wire = vec![3, 0, 0, 0, b'n', b'o', b'!'];
        write_message(&mut wire, &IpcResponse::Error { message: "x".into() }).expect("write");
        let mut r = wire.as_slice();
        assert!(matches!(read_message::<IpcResponse, _>(&mut r), Err(IpcError::InvalidMessage(_))));
        assert_eq!(
            read_message::<IpcResponse, _>(&mut r).expect("next frame"),
            IpcResponse::Error { message: "x".into() }
        );
        assert!(matches!(read_message::<IpcResponse, _>(&mut r), Err(IpcError::Closed)));
    }

    #[test]
    fn zero_length_frame_is_rejected_and_skipped() {
        let mut wire = vec![0, 0, 0, 0];
        write_message(&mut wire, &IpcMessage::List).expect("write");
        let mut r = wire.as_slice();
        assert!(matches!(read_message::<IpcMessage, _>(&mut r), Err(IpcError::EmptyFrame)));
        assert_eq!(read_message::<IpcMessage, _>(&mut r).expect("next"), IpcMessage::List);
    }

    #[test]
    fn eof_inside_a_frame_is_truncated_not_closed() {
        let e = read_message::<IpcMessage, _>(&mut &[6u8, 0][..]).expect_err("cut header");
        assert!(matches!(e, IpcError::Truncated { received: 2, expected: 4 }), "{e}");
        let e = read_message::<IpcMessage, _>(&mut &b"\x06\x00\x00\x00\"Li"[..]).expect_err("cut");
        assert!(matches!(e, IpcError::Truncated { received: 7, expected: 10 }), "{e}");
    }

    #[test]
    fn failed_write_writes_nothing() {
        let mut wire = Vec::new();
        let cfg = FrameConfig::new().with_max_message_size(10);
        let e =
            write_message_with(&mut wire, &IpcMessage::Stop { name: "a-long-name".into() }, cfg)
                .expect_err("too large");
        assert!(matches!(e, IpcError::FrameTooLarge { max: 10, .. }));
        assert!(wire.is_empty());
    }
}
