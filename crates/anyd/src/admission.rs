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

    use Caller as C;

    fn user(uid: u32) -> Caller {
        C::user(uid)
    }

    const ROOT: Caller = C::ROOT;

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
    fn the_oldest_still_in_its_handshake_is_cut_among_many() {
        let mut c = Connections::new(Limits {
            max: 100_000,
            per_uid: 100_000,
            reserved: 0,
            handshakes: 1_000,
        });
        // Two uids interleaved; uid 1 passes every third handshake.
        for id in 0..2_000 {
            let uid = 1 + (id % 2) as u32;
            assert!(!admit(&mut c, id, user(uid), true).unwrap().cut);
            if uid == 1 && id % 3 == 0 {
                c.authenticated(id);
            }
        }
        // uid 1 has 666 in their handshake, uid 2 a thousand: uid 2's
        // next cuts its oldest, 1, then 3, and so on.
        for (n, id) in (2_000..2_010).enumerate() {
            assert!(admit(&mut c, id * 2 + 1, user(2), true).unwrap().cut);
            assert!(c.was_cut(2 * n as u64 + 1), "{n}");
            assert!(!c.was_cut(2 * n as u64 + 3));
        }
        // Connections gone or through their handshake are never cut: once
        // uid 1 has a thousand in their handshake, 0 has passed and 2 is
        // gone, so 4 is cut.
        for id in 4_100..4_434 {
            admit(&mut c, id * 2, user(1), true).unwrap();
        }
        c.remove(2);
        assert!(!admit(&mut c, 10_000, user(1), true).unwrap().cut);
        assert!(admit(&mut c, 10_002, user(1), true).unwrap().cut);
        assert!(!c.was_cut(0) && c.was_cut(4) && !c.was_cut(8));
    }

    #[test]
    fn a_small_cap_still_gives_each_user_a_few_places_and_root_its_reserve() {
        let resolve = |max| Limits::resolve(max, None, None, 64, true);
        let share = |max| {
            let l = resolve(max);
            (l.per_uid, l.reserved)
        };
        assert_eq!(share(1024), (128, 128));
        assert_eq!(share(64), (8, 8));
        assert_eq!(share(16), (4, 2));
        assert_eq!(share(8), (4, 1));
        assert_eq!(share(4), (3, 1));
        assert_eq!(share(2), (1, 1));
        assert_eq!(share(1), (1, 0));
        // What is set is kept, and TCP has no reserve.
        let set = Limits::resolve(16, Some(2), Some(0), 64, true);
        assert_eq!((set.per_uid, set.reserved), (2, 0));
        assert_eq!(Limits::resolve(16, None, None, 64, false).reserved, 0);
        assert_eq!(Limits::resolve(16, None, Some(99), 64, true).reserved, 16);
    }

    #[test]
    fn an_iterator_left_running_holds_its_callers_place_until_it_ends() {
        let conns = Arc::new(Mutex::new(Connections::new(LIMITS)));
        let lock = || conns.lock().unwrap();
        for id in 0..3 {
            admit(&mut lock(), id, user(1), false).unwrap();
        }
        // Two of uid 1's connections end, each leaving an iterator.
        let first = Connections::linger(&conns, 0).unwrap();
        lock().remove(0);
        let second = Connections::linger(&conns, 1).unwrap();
        lock().remove(1);
        let held = lock();
        assert_eq!((held.len(), held.lingering()), (1, 2));
        drop(held);
        assert!(Connections::linger(&conns, 0).is_none(), "gone already");
        // Its share is still held: one connection and two iterators.
        assert_eq!(admit(&mut lock(), 3, user(1), false), Err(Refusal::PerUid));
        // They count among unprivileged places too: five more fill what
        // the reserve leaves, and root still gets the reserve.
        for (id, uid) in (4..).zip([2, 2, 2, 3, 3]) {
            admit(&mut lock(), id, user(uid), false).unwrap();
        }
        assert_eq!(
            admit(&mut lock(), 9, user(4), false),
            Err(Refusal::Reserved)
        );
        admit(&mut lock(), 10, ROOT, false).unwrap();
        // Root's iterators hold places as well, within the cap.
        let roots = Connections::linger(&conns, 10).unwrap();
        lock().remove(10);
        admit(&mut lock(), 11, ROOT, false).unwrap();
        assert_eq!(admit(&mut lock(), 12, ROOT, false), Err(Refusal::Full));
        // An iterator that ends gives its place back.
        drop(first);
        admit(&mut lock(), 13, user(1), false).unwrap();
        assert_eq!(admit(&mut lock(), 14, user(1), false), Err(Refusal::Full));
        drop(roots);
        admit(&mut lock(), 15, ROOT, false).unwrap();
        drop(second);
        for id in [2, 4, 5, 6, 7, 8, 11, 13, 15] {
            lock().remove(id);
        }
        let c = lock();
        assert!(c.is_empty() && c.by_uid.is_empty() && c.unprivileged == 0 && c.lingering == 0);
    }

    #[test]
    fn a_connection_thread_that_panics_gives_its_place_back() {
        let conns = Arc::new(Mutex::new(Connections::new(LIMITS)));
        let changed = Arc::new(Condvar::new());
        conns
            .lock()
            .unwrap()
            .admit(7, user(1), true, Weak::new())
            .unwrap();
        let (c, ch) = (conns.clone(), changed.clone());
        let thread = std::thread::spawn(move || {
            let _held = Held::new(&c, &ch, 7);
            panic!("a bug in serving a connection");
        });
        assert!(thread.join().is_err());
        let c = conns.lock().unwrap();
        assert!(c.is_empty() && c.by_uid.is_empty() && c.unprivileged == 0);
    }
}
