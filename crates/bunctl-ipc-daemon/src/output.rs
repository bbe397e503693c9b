//! Output capture: reading an app's stdout and stderr as lines, and the lines kept per app.
//!
//! Each app's kept lines sit behind a lock of their own ([`AppLog`]), so an app that prints a
//! flood of lines never holds up requests about other apps, nor the app table: capture does not
//! touch the table at all.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
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

/// One kept output line.
#[derive(Debug, Clone)]
pub(crate) struct LogLine {
    /// Daemon-wide output order, to merge apps' logs.
    pub(crate) seq: u64,
    pub(crate) stream: OutputStream,
    pub(crate) line: String,
}

/// The last lines of one app's output.
#[derive(Debug, Default)]
pub(crate) struct AppLog {
    state: Mutex<LogState>,
}

#[derive(Debug, Default)]
struct LogState {
    lines: VecDeque<LogLine>,
    /// Set when the app is deleted: later lines (from a descendant that still holds the pipes)
    /// are dropped, so that no `log_line` follows the app's `deleted`.
    closed: bool,
}

impl AppLog {
    fn state(&self) -> MutexGuard<'_, LogState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Keeps `line` (and at most `keep` lines in all), numbered from `seq`, and calls `publish`
    /// with it while this log's lock is held, so that a client told about the line finds it in
    /// `Logs`. Does nothing once the log is [closed](Self::close).
    pub(crate) fn record(
        &self,
        seq: &AtomicU64,
        keep: usize,
        stream: OutputStream,
        line: String,
        publish: impl FnOnce(&str),
    ) {
        let mut state = self.state();
        if state.closed {
            return;
        }
        publish(&line);
        if keep > 0 {
            while state.lines.len() >= keep {
                state.lines.pop_front();
            }
            let seq = seq.fetch_add(1, Ordering::Relaxed);
            state.lines.push_back(LogLine { seq, stream, line });
        }
    }

    /// Drops every later line (the app is gone).
    pub(crate) fn close(&self) {
        self.state().closed = true;
    }

    /// The last `n` kept lines, oldest first.
    pub(crate) fn last(&self, n: usize) -> Vec<LogLine> {
        let state = self.state();
        let skip = state.lines.len().saturating_sub(n);
        state.lines.iter().skip(skip).cloned().collect()
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
    fn a_log_keeps_its_last_lines_and_nothing_after_it_is_closed() {
        let log = AppLog::default();
        let seq = AtomicU64::new(0);
        let mut published = Vec::new();
        for line in ["a", "b", "c"] {
            log.record(&seq, 2, OutputStream::Stdout, line.into(), |l| {
                published.push(l.to_owned())
            });
        }
        let kept: Vec<(u64, String)> = log.last(10).into_iter().map(|l| (l.seq, l.line)).collect();
        assert_eq!(kept, [(1, "b".to_owned()), (2, "c".to_owned())]);
        assert_eq!(log.last(1).len(), 1);
        log.close();
        log.record(&seq, 2, OutputStream::Stderr, "late".into(), |l| published.push(l.to_owned()));
        assert_eq!(published, ["a", "b", "c"], "nothing is published once closed");
        assert_eq!(log.last(10).len(), 2);
    }
}
