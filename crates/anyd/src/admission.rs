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
//! A stream's iterator still in its `next` when its connection ends (the
//! client gone; see `items::threaded`) runs on, on a thread of its own:
//! it holds its connection's place in every cap above, as [`Lingering`],
//! until its `next` returns. Its connection's thread and socket are gone;
//! what a caller can leave behind that way stays within its share.
//!
//! This module holds no socket but a weak reference to each connection's
//! (see [`Stream::share`]), to shut them down; accepting them is the
//! server's.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::Shutdown;
use std::sync::{Arc, Condvar, Mutex, Weak};

use crate::server::idle::Waiting;
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

/// The fewest places the default share gives one user, as far as the cap
/// less the reserve allows: an eighth of a small cap would leave a user
/// one or two, too few for a client and the tool that checks on it.
pub(crate) const MIN_SHARE: usize = 4;

impl Limits {
    /// The caps of a daemon with `max` connections in all; `per_uid` and
    /// `reserved` as set, else the defaults: an eighth of `max` each, the
    /// reserve at least one place once `max` is 2 or more (so that root can
    /// always connect), and a user's share at least [`MIN_SHARE`] places
    /// or all that the reserve leaves, whichever is fewer. `uids`: callers
    /// have uids (Unix sockets); without (TCP) nothing is reserved.
    pub(crate) fn resolve(
        max: usize,
        per_uid: Option<usize>,
        reserved: Option<usize>,
        handshakes: usize,
        uids: bool,
    ) -> Limits {
        let eighth = max / 8;
        let reserved = if uids {
            reserved.unwrap_or(eighth.max(1).min(max / 2)).min(max)
        } else {
            0
        };
        let unreserved = max - reserved;
        let per_uid = per_uid.unwrap_or(eighth.max(MIN_SHARE.min(unreserved)).max(1));
        Limits {
            max,
            per_uid,
            reserved,
            handshakes,
        }
    }
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

#[cfg(test)]
impl Caller {
    /// An unprivileged caller of uid `uid`, for tests.
    pub(crate) fn user(uid: u32) -> Caller {
        Caller {
            uid: Some(uid),
            privileged: false,
        }
    }

    /// Root, for tests.
    pub(crate) const ROOT: Caller = Caller {
        uid: Some(0),
        privileged: true,
    };
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
    /// Its thread's wait for the next request, which the idle timeout's
    /// keeper may cut ([`Connections::cut_idle`]).
    waiting: Arc<Waiting>,
    uid: Option<u32>,
    privileged: bool,
    /// Cut by the handshake cap: its thread says so when its handshake
    /// fails, rather than take it for a failed handshake.
    cut: bool,
}

/// What one unprivileged uid (or all of TCP) holds.
#[derive(Debug, Default)]
struct Count {
    conns: usize,
    /// Iterators left running by its connections that ended.
    lingering: usize,
    /// The ids of its connections still in their handshake, oldest first:
    /// the one to cut is the first.
    handshaking: BTreeSet<u64>,
}

/// The connections a daemon holds, by id (ids grow: the first in id order
/// is the oldest).
#[derive(Debug)]
pub(crate) struct Connections {
    limits: Limits,
    conns: BTreeMap<u64, Conn>,
    /// Unprivileged connections, by uid.
    by_uid: HashMap<Option<u32>, Count>,
    /// Unprivileged connections in all, lingering iterators included.
    unprivileged: usize,
    /// Lingering iterators in all, privileged callers' included.
    lingering: usize,
}

impl Connections {
    pub(crate) fn new(limits: Limits) -> Self {
        Connections {
            limits,
            conns: BTreeMap::new(),
            by_uid: HashMap::new(),
            unprivileged: 0,
            lingering: 0,
        }
    }

    /// Connections held (lingering iterators not counted).
    pub(crate) fn len(&self) -> usize {
        self.conns.len()
    }

    /// Iterators left running by connections that ended, each holding its
    /// connection's place.
    pub(crate) fn lingering(&self) -> usize {
        self.lingering
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }

    /// Admits connection `id` from `caller` (`handshake`: it has the
    /// authkey handshake ahead of it), or says why not. Ids must grow from
    /// one call to the next: the smallest is taken for the oldest.
    pub(crate) fn admit(
        &mut self,
        id: u64,
        caller: Caller,
        handshake: bool,
        socket: Weak<Stream>,
    ) -> Result<Admitted, Refusal> {
        let limits = self.limits;
        if self.conns.len() + self.lingering >= limits.max {
            return Err(Refusal::Full);
        }
        let mut cut = false;
        if !caller.privileged {
            if self.unprivileged >= limits.max.saturating_sub(limits.reserved) {
                return Err(Refusal::Reserved);
            }
            let count = self.by_uid.entry(caller.uid).or_default();
            if caller.uid.is_some() && count.conns + count.lingering >= limits.per_uid {
                return Err(Refusal::PerUid);
            }
            count.conns += 1;
            if handshake {
                if count.handshaking.len() >= limits.handshakes {
                    if let Some(oldest) = count.handshaking.pop_first() {
                        cut = true;
                        if let Some(conn) = self.conns.get_mut(&oldest) {
                            Self::cut(conn);
                        }
                    }
                }
                count.handshaking.insert(id);
            }
            self.unprivileged += 1;
        }
        self.conns.insert(
            id,
            Conn {
                socket,
                waiting: Waiting::new(),
                uid: caller.uid,
                privileged: caller.privileged,
                cut: false,
            },
        );
        Ok(Admitted { cut })
    }

    /// Cuts a connection still in its handshake (no longer counted as
    /// one). It stays counted as a connection until its thread lets it go.
    fn cut(conn: &mut Conn) {
        conn.cut = true;
        if let Some(socket) = conn.socket.upgrade() {
            let _ = socket.shutdown(Shutdown::Both);
        }
    }

    /// Connection `id` has passed its handshake.
    pub(crate) fn authenticated(&mut self, id: u64) {
        if let Some(conn) = self.conns.get(&id) {
            if let Some(count) = self.by_uid.get_mut(&conn.uid) {
                count.handshaking.remove(&id);
            }
        }
    }

    /// Connection `id`'s wait for requests, for its thread to note.
    pub(crate) fn waiting(&self, id: u64) -> Option<Arc<Waiting>> {
        self.conns.get(&id).map(|c| c.waiting.clone())
    }

    /// Shuts down both ways each connection whose wait `over` cuts: its
    /// thread's read ends, and it ends as idle.
    pub(crate) fn cut_idle(&self, mut over: impl FnMut(&Waiting) -> bool) {
        for conn in self.conns.values() {
            if over(&conn.waiting) {
                if let Some(socket) = conn.socket.upgrade() {
                    let _ = socket.shutdown(Shutdown::Both);
                }
            }
        }
    }

    /// Whether connection `id` was cut by the handshake cap.
    pub(crate) fn was_cut(&self, id: u64) -> bool {
        self.conns.get(&id).is_some_and(|c| c.cut)
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
            count.handshaking.remove(&id);
            if count.conns + count.lingering == 0 {
                self.by_uid.remove(&conn.uid);
            }
        }
    }

    /// Connection `id`, about to end, leaves an iterator running: it holds
    /// a place of the same caller's until dropped. `None` if `id` is not
    /// held.
    pub(crate) fn linger(conns: &Arc<Mutex<Connections>>, id: u64) -> Option<Lingering> {
        let mut this = conns.lock().unwrap_or_else(|e| e.into_inner());
        let conn = this.conns.get(&id)?;
        let (uid, privileged) = (conn.uid, conn.privileged);
        this.lingering += 1;
        if !privileged {
            this.unprivileged += 1;
            this.by_uid.entry(uid).or_default().lingering += 1;
        }
        Some(Lingering {
            conns: conns.clone(),
            uid,
            privileged,
        })
    }

    /// A lingering iterator of `uid` has ended.
    fn unlinger(&mut self, uid: Option<u32>, privileged: bool) {
        self.lingering -= 1;
        if privileged {
            return;
        }
        self.unprivileged -= 1;
        if let Some(count) = self.by_uid.get_mut(&uid) {
            count.lingering -= 1;
            if count.conns + count.lingering == 0 {
                self.by_uid.remove(&uid);
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

/// The place an iterator left running by an ended connection holds (see
/// [`Connections::linger`]), until it is dropped as the iterator's thread
/// ends. It keeps the registry alive, and no socket.
pub(crate) struct Lingering {
    conns: Arc<Mutex<Connections>>,
    uid: Option<u32>,
    privileged: bool,
}

impl Drop for Lingering {
    fn drop(&mut self) {
        self.conns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .unlinger(self.uid, self.privileged);
    }
}

/// A connection's place, held by its thread: dropped, however the thread
/// ends (a panic too), it gives the place back and wakes whoever waits for
/// connections to end (shutdown).
pub(crate) struct Held<'a> {
    conns: &'a Mutex<Connections>,
    changed: &'a Condvar,
    id: u64,
}

impl<'a> Held<'a> {
    /// The place of connection `id`, admitted into `conns`.
    pub(crate) fn new(conns: &'a Mutex<Connections>, changed: &'a Condvar, id: u64) -> Self {
        Held { conns, changed, id }
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        let mut conns = self.conns.lock().unwrap_or_else(|e| e.into_inner());
        conns.remove(self.id);
        self.changed.notify_all();
    }
}

#[cfg(test)]
mod tests;
