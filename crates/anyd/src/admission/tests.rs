//! Unit tests of `admission`.

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

fn admit(c: &mut Connections, id: u64, who: Caller, handshake: bool) -> Result<Admitted, Refusal> {
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
