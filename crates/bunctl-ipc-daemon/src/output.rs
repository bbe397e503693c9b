//! Output capture: reading an app's stdout and stderr as lines, and publishing them.
//!
//! Each app's output has a gate of its own ([`AppLog`]), so an app that prints a flood of lines
//! never holds up requests about other apps, nor the app table: capture does not touch the
//! table at all.

use std::sync::{Mutex, MutexGuard, PoisonError};

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tracing::debug;

/// Which of an app's output streams a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OutputStream {
    Stdout,
    Stderr,
}

impl OutputStream {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            OutputStream::Stdout => "stdout",
            OutputStream::Stderr => "stderr",
        }
    }
}

/// The gate of one app's output: lines are published while the app exists, none after it is
/// deleted. (The lines themselves are kept by the bus, for `Logs` and `Follow` alike.)
#[derive(Debug, Default)]
pub(crate) struct AppLog {
    /// Set when the app is deleted: later lines (from a descendant that still holds the pipes)
    /// are dropped, so that no `log_line` follows the app's `deleted`.
    closed: Mutex<bool>,
}

impl AppLog {
    fn closed(&self) -> MutexGuard<'_, bool> {
        self.closed.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Calls `publish` (for one line) while this log's lock is held, unless the log is
    /// [closed](Self::close), so that no line is published after the close returns.
    pub(crate) fn record(&self, publish: impl FnOnce()) {
        let closed = self.closed();
        if !*closed {
            publish();
        }
    }

    /// Drops every later line (the app is gone).
    pub(crate) fn close(&self) {
        *self.closed() = true;
    }
}

/// Reads `output` line by line (lines over `max` bytes are split; `\r\n` and `\n` end lines;
/// invalid UTF-8 is replaced) until end of stream or a read error.
pub(crate) async fn read_lines(
    output: impl AsyncRead + Unpin,
    max: usize,
    mut on_line: impl FnMut(String),
) {
    let mut reader = BufReader::new(output);
    let mut line = Vec::new();
    let mut emit = |line: &mut Vec<u8>| {
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        on_line(String::from_utf8_lossy(line).into_owned());
        line.clear();
    };
    loop {
        let buf = match reader.fill_buf().await {
            Ok(buf) => buf,
            Err(e) => {
                debug!(error = %e, "output read failed");
                break;
            }
        };
        if buf.is_empty() {
            if !line.is_empty() {
                emit(&mut line);
            }
            return;
        }
        let room = max - line.len();
        match buf.iter().position(|&b| b == b'\n') {
            Some(end) if end <= room => {
                line.extend_from_slice(&buf[..end]);
                reader.consume(end + 1);
                emit(&mut line);
            }
            _ => {
                let take = buf.len().min(room);
                line.extend_from_slice(&buf[..take]);
                reader.consume(take);
                if line.len() >= max {
                    emit(&mut line);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn lines_of(input: &[u8], max: usize) -> Vec<String> {
        let mut out = Vec::new();
        read_lines(input, max, |l| out.push(l)).await;
        out
    }

    #[tokio::test]
    async fn lines_are_split_on_newlines_and_at_the_length_limit() {
        assert_eq!(lines_of(b"a\r\nbb\n\nccc", 100).await, ["a", "bb", "", "ccc"]);
        assert_eq!(lines_of(b"abcdefg\nh\n", 3).await, ["abc", "def", "g", "h"]);
        assert_eq!(lines_of(b"abc\n", 3).await, ["abc"]);
        assert_eq!(lines_of(b"\xff\n", 8).await, ["\u{fffd}"]);
    }

    #[test]
    fn nothing_is_published_once_a_log_is_closed() {
        let log = AppLog::default();
        let mut published = Vec::new();
        for line in ["a", "b"] {
            log.record(|| published.push(line));
        }
        log.close();
        log.record(|| published.push("late"));
        assert_eq!(published, ["a", "b"]);
    }
}
