//! Who is on the other end of a connection ([`Peer`]): its address, and
//! on a Unix socket the credentials the kernel vouches for (SO_PEERCRED)
//! and the caller's groups (SO_PEERGROUPS, or the group database where
//! the kernel keeps none).
//!
//! It owns reading them, once per connection. What a caller may call is
//! `policy`'s; how many connections it may hold, `admission`'s.
//!
//! The type is in every feature set (an API's methods name it, and an
//! interface crate builds without the daemon); reading a peer is the
//! daemon's, under `server`.

use std::sync::Arc;

#[cfg(feature = "server")]
use {super::Stream, crate::address::Address, std::os::fd::AsFd, std::os::unix::net::UnixStream};

/// Who is on the other end of a connection.
///
/// Cheap to clone. On Unix sockets the kernel vouches for the process
/// credentials (SO_PEERCRED, taken when the connection was made); on TCP
/// there are none, only the address.
#[derive(Debug, Clone)]
pub struct Peer {
    inner: Arc<PeerInfo>,
}

#[derive(Debug)]
struct PeerInfo {
    address: String,
    creds: Option<rustix::net::UCred>,
    /// Primary and supplementary groups (Unix sockets only).
    groups: Vec<u32>,
}

/// The groups of a Unix socket peer: the kernel's record when it has one,
/// otherwise what the group database says of the peer's user.
#[cfg(feature = "server")]
fn groups_of_peer(stream: &UnixStream, creds: &rustix::net::UCred) -> Vec<u32> {
    let gid = creds.gid.as_raw();
    let mut groups = crate::sys::peer_groups(stream.as_fd()).unwrap_or_else(|| {
        crate::sys::users::user_by_uid(creds.uid.as_raw())
            .ok()
            .flatten()
            .and_then(|u| crate::sys::users::groups_of(&u.name, gid).ok())
            .unwrap_or_default()
    });
    if !groups.contains(&gid) {
        groups.insert(0, gid);
    }
    groups
}

#[cfg(feature = "server")]
impl Peer {
    pub(crate) fn of(stream: &Stream) -> Peer {
        let (address, creds, groups) = match stream {
            Stream::Unix(s) => {
                let creds = rustix::net::sockopt::socket_peercred(s).ok();
                match creds {
                    Some(c) => (
                        format!("unix:pid={}", c.pid.as_raw_nonzero()),
                        creds,
                        groups_of_peer(s, &c),
                    ),
                    None => ("unix".to_owned(), None, Vec::new()),
                }
            }
            Stream::Tcp(s) => (
                s.peer_addr()
                    .map(|a| Address::from(a).to_string())
                    .unwrap_or_else(|_| "tcp".to_owned()),
                None,
                Vec::new(),
            ),
            Stream::Shared(s) => return Peer::of(s),
        };
        Peer {
            inner: Arc::new(PeerInfo {
                address,
                creds,
                groups,
            }),
        }
    }
}

impl Peer {
    /// A readable description of the caller: `tcp:127.0.0.1:50412`, or
    /// `unix:pid=1234` on a Unix socket.
    pub fn address(&self) -> &str {
        &self.inner.address
    }

    /// The caller's user id (Unix sockets only).
    pub fn uid(&self) -> Option<u32> {
        self.inner.creds.map(|c| c.uid.as_raw())
    }

    /// The caller's primary group id (Unix sockets only).
    pub fn gid(&self) -> Option<u32> {
        self.inner.creds.map(|c| c.gid.as_raw())
    }

    /// The caller's primary and supplementary group ids, as the kernel
    /// recorded them when it connected (Unix sockets only; empty on TCP).
    pub fn groups(&self) -> &[u32] {
        &self.inner.groups
    }

    /// The caller's process id when it connected (Unix sockets only).
    pub fn pid(&self) -> Option<u32> {
        self.inner
            .creds
            .map(|c| c.pid.as_raw_nonzero().get().unsigned_abs())
    }
}
