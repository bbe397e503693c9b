//! Who is on the other end, and who may be.

use std::fmt;
use std::sync::Arc;

/// The identity of the process at the other end of a connection, as the OS reports it.
///
/// On Unix all three are known (from `SO_PEERCRED` on Linux, `getpeereid`/`LOCAL_PEERCRED`
/// elsewhere; `pid` may be missing on some BSDs). On Windows only `pid` is known
/// (`GetNamedPipeClientProcessId` / `GetNamedPipeServerProcessId`); access there is decided by
/// the pipe's security descriptor instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PeerCredentials {
    /// Process id of the peer.
    pub pid: Option<u32>,
    /// Effective user id of the peer.
    pub uid: Option<u32>,
    /// Effective group id of the peer.
    pub gid: Option<u32>,
}

/// Which peers a server accepts. Rejected connections are closed at once and logged at `warn!`.
///
/// The default, [`PeerPolicy::SameUser`], admits the server's own user and root. It is a second
/// line of defence behind the socket's file mode (0600 by default): with a wider mode, e.g.
/// `ServerOptions::with_socket_mode(0o666)`, it is the policy that keeps other users out.
///
/// ```
/// use bunctl_ipc::{PeerCredentials, PeerPolicy};
///
/// let policy = PeerPolicy::custom(|peer: &PeerCredentials| peer.uid == Some(1000));
/// assert!(policy.allows(&PeerCredentials { pid: Some(7), uid: Some(1000), gid: Some(1000) }, 0));
/// assert!(!PeerPolicy::Uids(vec![1000]).allows(&PeerCredentials { pid: None, uid: Some(1001), gid: None }, 0));
/// ```
#[derive(Clone, Default)]
pub enum PeerPolicy {
    /// The server's effective uid, or root (uid 0). Peers of unknown uid (Windows, where the
    /// pipe's DACL already restricts access to the current user) are admitted.
    #[default]
    SameUser,
    /// Anyone who can open the socket.
    AnyUser,
    /// Only these uids; peers of unknown uid are refused.
    Uids(Vec<u32>),
    /// A predicate of your own.
    Custom(Arc<dyn Fn(&PeerCredentials) -> bool + Send + Sync>),
}

impl PeerPolicy {
    /// A policy from a predicate.
    pub fn custom(f: impl Fn(&PeerCredentials) -> bool + Send + Sync + 'static) -> Self {
        PeerPolicy::Custom(Arc::new(f))
    }

    /// Whether `peer` may talk to a server running as `server_uid`.
    pub fn allows(&self, peer: &PeerCredentials, server_uid: u32) -> bool {
        match self {
            PeerPolicy::SameUser => peer.uid.is_none_or(|uid| uid == server_uid || uid == 0),
            PeerPolicy::AnyUser => true,
            PeerPolicy::Uids(uids) => peer.uid.is_some_and(|uid| uids.contains(&uid)),
            PeerPolicy::Custom(f) => f(peer),
        }
    }
}

impl fmt::Debug for PeerPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeerPolicy::SameUser => f.write_str("SameUser"),
            PeerPolicy::AnyUser => f.write_str("AnyUser"),
            PeerPolicy::Uids(u) => f.debug_tuple("Uids").field(u).finish(),
            PeerPolicy::Custom(_) => f.write_str("Custom(..)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uid(u: u32) -> PeerCredentials {
        PeerCredentials { pid: Some(1), uid: Some(u), gid: Some(u) }
    }

    #[test]
    fn same_user_admits_owner_and_root_only() {
        let p = PeerPolicy::SameUser;
        assert!(p.allows(&uid(1000), 1000));
        assert!(p.allows(&uid(0), 1000));
        assert!(!p.allows(&uid(1001), 1000));
        assert!(p.allows(&PeerCredentials { pid: Some(1), uid: None, gid: None }, 1000));
    }

    #[test]
    fn uid_list_refuses_unknown_uid() {
        let p = PeerPolicy::Uids(vec![5]);
        assert!(p.allows(&uid(5), 0));
        assert!(!p.allows(&uid(0), 0));
        assert!(!p.allows(&PeerCredentials { pid: None, uid: None, gid: None }, 0));
    }
}
