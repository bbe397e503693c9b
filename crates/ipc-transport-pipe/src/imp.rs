//! The implementation; the whole crate is empty on non-Windows targets.

mod connect;
mod listener;
mod name;
mod security;
mod stream;

pub use connect::connect;
pub use listener::PipeListener;
pub use name::{PIPE_PREFIX, is_pipe_name, pipe_name};
pub use security::current_user_sid;
pub use stream::{ClientStream, PipeEnd, PipeStream, ServerStream};
