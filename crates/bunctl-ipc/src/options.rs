//! What every connection starts with, whichever end opened it.

use std::time::Duration;

use ipc_proto::{DEFAULT_TIMEOUT, FrameConfig};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Connection;

/// The options a client's and a server's connections share: the message size limit and the
/// per-operation timeout. [`ClientOptions`](crate::ClientOptions) and
/// [`ServerOptions`](crate::ServerOptions) each embed one, and get their builders for it from
/// [`connection_options!`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnectionOptions {
    pub(crate) frame: FrameConfig,
    pub(crate) timeout: Duration,
}

impl ConnectionOptions {
    pub(crate) const fn new() -> Self {
        ConnectionOptions { frame: FrameConfig::new(), timeout: DEFAULT_TIMEOUT }
    }

    /// A connection over `io` with these options.
    pub(crate) fn connection<S, D: DeserializeOwned, E: Serialize>(
        &self,
        io: S,
    ) -> Connection<S, D, E> {
        Connection::with_config(io, self.frame, self.timeout)
    }
}

/// The builders and getters of the shared options, written once and expanded into both option
/// types (which keep them in a field named `connection`). `$timeout_doc` says what the timeout
/// bounds on that side.
macro_rules! connection_options {
    ($timeout_doc:literal) => {
        /// The largest message payload accepted or sent, in bytes: by default
        /// [`MAX_MESSAGE_SIZE`](crate::MAX_MESSAGE_SIZE), 10 MiB. A received frame that
        /// claims more is refused from its header alone; a message that would be larger is
        /// not sent.
        pub fn with_max_message_size(mut self, bytes: usize) -> Self {
            self.connection.frame = self.connection.frame.with_max_message_size(bytes);
            self
        }

        #[doc = $timeout_doc]
        ///
        /// [`DEFAULT_TIMEOUT`](crate::DEFAULT_TIMEOUT), 30 s, unless set.
        pub fn with_timeout(mut self, timeout: std::time::Duration) -> Self {
            self.connection.timeout = timeout;
            self
        }

        /// The message size limit in force (see
        /// [`with_max_message_size`](Self::with_max_message_size)).
        pub fn max_message_size(&self) -> usize {
            self.connection.frame.max_message_size()
        }

        /// The timeout in force (see [`with_timeout`](Self::with_timeout)).
        pub fn timeout(&self) -> std::time::Duration {
            self.connection.timeout
        }
    };
}
pub(crate) use connection_options;
