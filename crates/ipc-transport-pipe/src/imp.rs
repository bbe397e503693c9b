//! The implementation; the whole crate is empty on non-Windows targets.

mod connect;
mod error;
mod identity;
mod listener;
mod name;
mod security;
mod stream;

pub use connect::connect;
pub use error::{EndpointError, Result, Step};
pub use identity::{
    IdentitySource, SYSTEM_SID, pipe_owner_sid, server_process_user_sid, server_user_sid,
    verify_server,
};
pub use listener::PipeListener;
pub use name::{PIPE_PREFIX, is_pipe_name, pipe_name};
pub use security::current_user_sid;
pub use stream::{ClientStream, PipeEnd, PipeStream, ServerStream};
