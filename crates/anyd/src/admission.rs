//! Who gets a connection, and the registry of the connections held.
//!
//! The rules (DESIGN.md, "Fair share"):
//!
//! - at most `max` connections in all;
//! - root and the daemon's own user ("privileged" callers) may use all of
//!   them; everyone else shares `max - reserved`, so that a flood from
//!   unprivileged users always leaves root `reserved` places;
//! - each other uid holds at most `per_uid`;
//! - connections that must pass the authkey handshake, of one unprivileged
//!   uid (on TCP, where there is no uid: of everyone together), are at most
//!   `handshakes` at once; past that, the oldest of them is cut to let the
//!   new one in. Cutting the oldest rather than refusing the newest is what
//!   keeps a flood of clients that never finish the handshake from locking
//!   out the clients that know the key: they finish theirs in a round trip,
//!   long before a flood cycles through the whole cap; refusing the newest
//!   would let the flood hold every place for the whole handshake timeout.
//!
//! Over a cap, a new connection is refused (closed at once): held
//! connections are never cut for a newcomer, except handshakes as above.
//!
//! This module holds no socket but a weak reference to each connection's
//! (see [`Stream::share`]), to shut them down; accepting them is the
//! server's.

use std::collections::{BTreeMap, HashMap};
use std::net::Shutdown;
use std::sync::Weak;
use std::time::{Duration, Instant};

use crate::transport::Stream;

/// The caps, resolved at bind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    /// Connections in all.
    pub(crate) max: usize,
    /// Connections of one unprivileged uid.
    pub(crate) per_uid: usize,
    /// Places only privileged callers may take.
    pub(crate) reserved: usize,
    /// Handshakes in progress of one unprivileged uid (on TCP: of all).
    pub(crate) handshakes: usize,
}

/// Who a new connection comes from.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Caller {
    /// Its uid (Unix sockets); `None` on TCP.
    pub(crate) uid: Option<u32>,
    /// Root or the daemon's own user: may use the reserve, and is under
    /// neither the per-uid cap nor the handshake cap.
    pub(crate) privileged: bool,
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// `max` connections are held.
    Full,
    /// What is left is reserved for root and the daemon's user.
    Reserved,
    /// This uid holds its share.
    PerUid,
}

impl Refusal {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Refusal::Full => "too many connections",
            Refusal::Reserved => "the connections left are reserved for root and the daemon's user",
            Refusal::PerUid => "too many connections from this user",
        }
    }
}

/// A connection admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Admitted {
    /// An older connection was cut, still in its handshake, to make room.
    pub(crate) cut: bool,
}

/// One connection held.
#[derive(Debug)]
struct Conn {
    /// To shut it down; the socket closes when its thread lets it go.
    socket: Weak<Stream>,
    uid: Option<u32>,
    privileged: bool,
    /// Counted in its uid's handshakes.
    handshaking: bool,
}

/// What one unprivileged uid (or all of TCP) holds.
#[derive(Debug, Default)]
struct Count {
    conns: usize,
    handshakes: usize,
}

/// The connections a daemon holds, by id (ids grow: the first in id order
/// is the oldest).
#[derive(Debug)]
pub(crate) struct Connections {
    limits: Limits,
    conns: BTreeMap<u64, Conn>,
    /// Unprivileged connections, by uid.
    by_uid: HashMap<Option<u32>, Count>,
    /// Unprivileged connections in all.
    unprivileged: usize,
}

impl Connections {
    pub(crate) fn new(limits: Limits) -> Self {
        Connections {
            limits,
            conns: BTreeMap::new(),
            by_uid: HashMap::new(),
            unprivileged: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.conns.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }

    /// Admits connection `id` from `caller` (`handshake`: it has the
    /// authkey handshake ahead of it), or says why not.
    pub(crate) fn admit(
        &mut self,
        id: u64,
        caller: Caller,
        handshake: bool,
        socket: Weak<Stream>,
    ) -> Result<Admitted, Refusal> {
        let limits = self.limits;
        if self.conns.len() >= limits.max {
            return Err(Refusal::Full);
        }
        let mut cut = false;
        if !caller.privileged {
            if self.unprivileged >= limits.max.saturating_sub(limits.reserved) {
                return Err(Refusal::Reserved);
            }
            let count = self.by_uid.entry(caller.uid).or_default();
            if caller.uid.is_some() && count.conns >= limits.per_uid {
                return Err(Refusal::PerUid);
            }
            if handshake && count.handshakes >= limits.handshakes {
                cut = self.cut_oldest_handshake(caller.uid);
            }
            let count = self.by_uid.entry(caller.uid).or_default();
            count.conns += 1;
            if handshake {
                count.handshakes += 1;
            }
            self.unprivileged += 1;
        }
        self.conns.insert(
            id,
            Conn {
                socket,
                uid: caller.uid,
                privileged: caller.privileged,
                handshaking: handshake && !caller.privileged,
            },
        );
        Ok(Admitted { cut })
    }

    /// Cuts the oldest unprivileged connection of `uid` still in its
    /// handshake. It stays counted as a connection until its thread lets
    /// it go, no longer as a handshake.
    fn cut_oldest_handshake(&mut self, uid: Option<u32>) -> bool {
        let Some(conn) = self
            .conns
            .values_mut()
            .find(|c| c.handshaking && c.uid == uid)
        else {
            return false;
        };
        conn.handshaking = false;
        if let Some(socket) = conn.socket.upgrade() {
            let _ = socket.shutdown(Shutdown::Both);
        }
        if let Some(count) = self.by_uid.get_mut(&uid) {
            count.handshakes -= 1;
        }
        true
    }

    /// Connection `id` has passed its handshake.
    pub(crate) fn authenticated(&mut self, id: u64) {
        if let Some(conn) = self.conns.get_mut(&id) {
            if conn.handshaking {
                conn.handshaking = false;
                if let Some(count) = self.by_uid.get_mut(&conn.uid) {
                    count.handshakes -= 1;
                }
            }
        }
    }

    /// Connection `id` is over.
    pub(crate) fn remove(&mut self, id: u64) {
        let Some(conn) = self.conns.remove(&id) else {
            return;
        };
        if conn.privileged {
            return;
        }
        self.unprivileged -= 1;
        if let Some(count) = self.by_uid.get_mut(&conn.uid) {
            count.conns -= 1;
            if conn.handshaking {
                count.handshakes -= 1;
            }
            if count.conns == 0 {
                self.by_uid.remove(&conn.uid);
            }
        }
    }

    /// Shuts down every connection still open.
    pub(crate) fn shutdown_all(&self, how: Shutdown) {
        for conn in self.conns.values() {
            if let Some(socket) = conn.socket.upgrade() {
                let _ = socket.shutdown(how);
            }
        }
    }
}

/// Lets a repeated warning through at most once per interval, counting
/// the ones held back: a flood must not become a flood of log lines.
#[derive(Debug)]
pub(crate) struct Throttle {
    every: Duration,
    last: Option<Instant>,
    held: u64,
}

impl Throttle {
    pub(crate) const fn new(every: Duration) -> Self {
        Throttle {
            every,
            last: None,
            held: 0,
        }
    }

    /// `Some(how many were held back since the last one)` if this one
    /// should be logged.
    pub(crate) fn let_through(&mut self) -> Option<u64> {
        let now = Instant::now();
        if self
            .last
            .is_some_and(|t| now.duration_since(t) < self.every)
        {
            self.held += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.held))
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::net::UnixStream;
    use std::sync::Arc;

    use super::*;

    const LIMITS: Limits = Limits {
        max: 10,
        per_uid: 3,
        reserved: 2,
        handshakes: 2,
    };

    fn user(uid: u32) -> Caller {
        Caller {
            uid: Some(uid),
            privileged: false,
        }
    }

    const ROOT: Caller = Caller {
        uid: Some(0),
        privileged: true,
    };

    const TCP: Caller = Caller {
        uid: None,
        privileged: false,
    };

    /// A socket for the registry, and the client end to see it cut.
    fn socket() -> (Arc<Stream>, UnixStream) {
        let (a, b) = UnixStream::pair().unwrap();
        (Arc::new(Stream::Unix(a)), b)
    }

    fn admit(
        c: &mut Connections,
        id: u64,
        who: Caller,
        handshake: bool,
    ) -> Result<Admitted, Refusal> {
        c.admit(id, who, handshake, Weak::new())
    }

    #[test]
    fn each_uid_gets_its_share_and_root_the_reserve() {
        let mut c = Connections::new(LIMITS);
        let mut id = 0..;
        for _ in 0..3 {
            admit(&mut c, id.next().unwrap(), user(1), false).unwrap();
        }
        assert_eq!(
            admit(&mut c, id.next().unwrap(), user(1), false),
            Err(Refusal::PerUid)
        );
        for uid in [2, 2, 2, 3, 3] {
            admit(&mut c, id.next().unwrap(), user(uid), false).unwrap();
        }
        // 8 unprivileged: the rest is root's.
        assert_eq!(
            admit(&mut c, id.next().unwrap(), user(4), false),
            Err(Refusal::Reserved)
        );
        admit(&mut c, 100, ROOT, false).unwrap();
        admit(&mut c, 101, ROOT, false).unwrap();
        assert_eq!(admit(&mut c, 102, ROOT, false), Err(Refusal::Full));
        // A place freed is a place again.
        c.remove(0);
        admit(&mut c, 103, user(4), false).unwrap();
        assert_eq!(admit(&mut c, 104, user(1), false), Err(Refusal::Full));
        c.remove(100);
        assert_eq!(c.len(), 9);
        assert_eq!(admit(&mut c, 105, user(1), false), Err(Refusal::Reserved));
        admit(&mut c, 106, ROOT, false).unwrap();
    }

    #[test]
    fn root_takes_unreserved_places_too_and_is_not_capped_per_uid() {
        let mut c = Connections::new(LIMITS);
        for id in 0..10 {
            admit(&mut c, id, ROOT, true).unwrap();
        }
        assert_eq!(admit(&mut c, 10, ROOT, false), Err(Refusal::Full));
        assert_eq!(admit(&mut c, 11, user(1), false), Err(Refusal::Full));
    }

    #[test]
    fn past_the_handshake_cap_the_oldest_handshake_of_that_uid_is_cut() {
        let mut c = Connections::new(Limits {
            per_uid: 10,
            reserved: 0,
            ..LIMITS
        });
        let (s0, mut c0) = socket();
        let (s1, _c1) = socket();
        let (s2, _c2) = socket();
        let (s3, _c3) = socket();
        let cut = |a: Result<Admitted, Refusal>| a.unwrap().cut;
        assert!(!cut(c.admit(0, user(1), true, Arc::downgrade(&s0))));
        assert!(!cut(c.admit(1, user(1), true, Arc::downgrade(&s1))));
        // Another uid's handshakes are its own.
        assert!(!cut(c.admit(2, user(2), true, Arc::downgrade(&s2))));
        assert!(cut(c.admit(3, user(1), true, Arc::downgrade(&s3))));
        use std::io::Read;
        assert_eq!(c0.read(&mut [0; 8]).unwrap(), 0, "the oldest was cut");
        // Cut, it no longer counts as a handshake: the next cuts the next.
        c.authenticated(1);
        assert!(!cut(admit(&mut c, 4, user(1), true)));
        assert!(cut(admit(&mut c, 5, user(1), true)));
        // Its thread ends: nothing is counted twice.
        c.remove(0);
        c.remove(3);
        c.remove(1);
        c.remove(4);
        c.remove(5);
        c.remove(2);
        assert!(c.is_empty() && c.by_uid.is_empty() && c.unprivileged == 0);
    }

    #[test]
    fn tcp_handshakes_are_capped_together_and_key_holders_use_the_rest() {
        let mut c = Connections::new(Limits {
            reserved: 0,
            ..LIMITS
        });
        // Key holders: past their handshake, under the global cap only.
        for id in 0..5 {
            admit(&mut c, id, TCP, true).unwrap();
            c.authenticated(id);
        }
        assert!(!admit(&mut c, 5, TCP, true).unwrap().cut);
        assert!(!admit(&mut c, 6, TCP, true).unwrap().cut);
        for id in 7..10 {
            assert!(admit(&mut c, id, TCP, true).unwrap().cut);
        }
        assert_eq!(admit(&mut c, 10, TCP, true), Err(Refusal::Full));
    }

    #[test]
    fn the_throttle_counts_what_it_holds_back() {
        let mut t = Throttle::new(Duration::from_secs(3600));
        assert_eq!(t.let_through(), Some(0));
        assert_eq!(t.let_through(), None);
        assert_eq!(t.let_through(), None);
        t.last = Some(Instant::now() - Duration::from_secs(3601));
        assert_eq!(t.let_through(), Some(2));
    }
}
