//! The daemon-wide budget of file descriptors that connections hold for
//! frames not yet complete, shared out like connections are (see
//! `admission`): a total, a reserve only root and the daemon's own user
//! may use, and a share per other uid.
//!
//! Why: descriptors that come with the bytes of a frame not yet complete
//! are held before the policy has seen the call (the frame's endpoint is
//! not known yet). Counted only per connection, a few connections of one
//! unprivileged uid could fill the daemon's descriptor table, and root's
//! next connection would fail for want of a descriptor. Counted here,
//! a connection past its uid's share is cut (its descriptors closed), and
//! what the reserve keeps is always there for root.
//!
//! It holds no descriptor: the connection's frame buffer does, and says
//! how many through its [`FdCharge`]. What the total is comes from the
//! process's limit on open files, at bind (`server::bind`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::admission::Caller;
use crate::transport::fds::{MAX_FDS_PER_FRAME, MAX_QUEUED};

/// How many descriptors may be held for frames in progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FdLimits {
    /// For all connections together.
    pub(crate) total: usize,
    /// Of the total, what only privileged callers may use.
    pub(crate) reserved: usize,
    /// What the connections of one unprivileged uid may hold together.
    pub(crate) per_uid: usize,
}

impl FdLimits {
    /// The shares of a budget of `total`: an eighth each for the reserve
    /// and for one uid, but at least one whole frame's worth
    /// ([`MAX_FDS_PER_FRAME`]) for each as far as the total allows, so
    /// that an honest caller can always send a frame with all it may carry.
    pub(crate) fn resolve(total: usize) -> FdLimits {
        let eighth = total / 8;
        let reserved = eighth.max(MAX_FDS_PER_FRAME).min(total / 2);
        let per_uid = eighth.max(MAX_FDS_PER_FRAME).min(total - reserved);
        FdLimits {
            total,
            reserved,
            per_uid,
        }
    }
}

/// How a daemon's open files are shared out, at bind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Plan {
    /// The connections it serves at most: what it was told, or fewer if
    /// its limit on open files holds fewer.
    pub(crate) connections: usize,
    /// The descriptors its connections may hold for frames in progress
    /// (`None`: it takes no descriptors from callers).
    pub(crate) fds: Option<FdLimits>,
}

impl Plan {
    /// The open files a daemon of `max_connections` wants: one a
    /// connection, [`MAX_QUEUED`] more a connection if it takes
    /// descriptors, and `spare` for everything else.
    pub(crate) fn wanted(max_connections: usize, takes_fds: bool, spare: u64) -> u64 {
        let per_connection = if takes_fds { 1 + MAX_QUEUED } else { 1 } as u64;
        (max_connections as u64)
            .saturating_mul(per_connection)
            .saturating_add(spare)
    }

    /// Shares out `open_files` (the soft limit the daemon got), less
    /// `spare` for the listener, the runtime, the pid file and what
    /// handlers open. When all that was wanted fits, every connection may
    /// hold what a connection may hold at most. When it does not, the
    /// connections get at most three quarters of what is left, the
    /// descriptors for frames in progress the rest: a daemon that accepted
    /// more connections than it has descriptors for, or let descriptors
    /// for frames fill the table, would fail root's next connection,
    /// reserve or not.
    pub(crate) fn new(
        open_files: u64,
        spare: u64,
        max_connections: usize,
        takes_fds: bool,
    ) -> Plan {
        let left = usize::try_from(open_files.saturating_sub(spare)).unwrap_or(usize::MAX);
        if !takes_fds {
            return Plan {
                connections: max_connections.min(left),
                fds: None,
            };
        }
        let wanted = max_connections.saturating_mul(MAX_QUEUED);
        let connections = if left >= max_connections.saturating_add(wanted) {
            max_connections
        } else {
            max_connections.min(left / 4 * 3)
        };
        Plan {
            connections,
            fds: Some(FdLimits::resolve(wanted.min(left - connections))),
        }
    }
}

/// What is held against the limits now.
#[derive(Debug, Default)]
struct Held {
    /// By everyone.
    all: usize,
    /// By unprivileged callers together.
    unprivileged: usize,
    /// By each unprivileged uid (`None`: callers with no uid, on TCP,
    /// where no descriptor travels anyway).
    by_uid: HashMap<Option<u32>, usize>,
}

/// The descriptors connections hold for frames in progress, for the
/// whole daemon.
#[derive(Debug)]
pub(crate) struct FdBudget {
    limits: FdLimits,
    held: Mutex<Held>,
}

impl FdBudget {
    pub(crate) fn new(limits: FdLimits) -> Arc<FdBudget> {
        Arc::new(FdBudget {
            limits,
            held: Mutex::new(Held::default()),
        })
    }

    /// A charge for one connection of `caller`, holding nothing yet.
    pub(crate) fn charge(self: &Arc<Self>, caller: Caller) -> FdCharge {
        FdCharge {
            budget: self.clone(),
            caller,
            held: 0,
        }
    }

    /// Takes `n` more for `caller` if that keeps every limit.
    fn take(&self, caller: Caller, n: usize) -> bool {
        let limits = self.limits;
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        if held.all + n > limits.total {
            return false;
        }
        if !caller.privileged {
            if held.unprivileged + n > limits.total - limits.reserved {
                return false;
            }
            let mine = held.by_uid.entry(caller.uid).or_default();
            if *mine + n > limits.per_uid {
                if *mine == 0 {
                    held.by_uid.remove(&caller.uid);
                }
                return false;
            }
            *mine += n;
            held.unprivileged += n;
        }
        held.all += n;
        true
    }

    fn give_back(&self, caller: Caller, n: usize) {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        held.all -= n;
        if !caller.privileged {
            held.unprivileged -= n;
            if let Some(mine) = held.by_uid.get_mut(&caller.uid) {
                *mine -= n;
                if *mine == 0 {
                    held.by_uid.remove(&caller.uid);
                }
            }
        }
    }

    /// What all connections hold now.
    #[cfg(test)]
    fn held(&self) -> usize {
        self.held.lock().unwrap().all
    }
}

/// What one connection holds from an [`FdBudget`]; given back when
/// dropped.
#[derive(Debug)]
pub(crate) struct FdCharge {
    budget: Arc<FdBudget>,
    caller: Caller,
    held: usize,
}

impl FdCharge {
    /// Accounts for the connection holding `n` descriptors from now on.
    /// Returns false, and changes nothing, if more than that would go over
    /// a limit: the descriptors must then be closed.
    pub(crate) fn hold(&mut self, n: usize) -> bool {
        if n > self.held {
            if !self.budget.take(self.caller, n - self.held) {
                return false;
            }
        } else if n < self.held {
            self.budget.give_back(self.caller, self.held - n);
        }
        self.held = n;
        true
    }
}

impl Drop for FdCharge {
    fn drop(&mut self) {
        if self.held > 0 {
            self.budget.give_back(self.caller, self.held);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(uid: u32) -> Caller {
        Caller::user(uid)
    }

    const ROOT: Caller = Caller::ROOT;

    #[test]
    fn shares_are_an_eighth_but_at_least_a_frame() {
        assert_eq!(
            FdLimits::resolve(240),
            FdLimits {
                total: 240,
                reserved: 30,
                per_uid: 30
            }
        );
        assert_eq!(
            FdLimits::resolve(65536),
            FdLimits {
                total: 65536,
                reserved: 8192,
                per_uid: 8192
            }
        );
        let small = FdLimits::resolve(40);
        assert_eq!((small.reserved, small.per_uid), (16, 16));
        // Never more than there is.
        let tiny = FdLimits::resolve(20);
        assert!(tiny.reserved + tiny.per_uid <= 20, "{tiny:?}");
    }

    #[test]
    fn a_plan_within_the_limit_gives_every_connection_its_most() {
        let wanted = Plan::wanted(1024, true, 64);
        assert_eq!(wanted, 1024 * 65 + 64);
        let plan = Plan::new(wanted, 64, 1024, true);
        assert_eq!(plan.connections, 1024);
        assert_eq!(plan.fds.unwrap().total, 1024 * MAX_QUEUED);
        // More than wanted changes nothing.
        assert_eq!(Plan::new(1 << 20, 64, 1024, true), plan);
    }

    #[test]
    fn a_plan_under_a_low_limit_fits_connections_and_descriptors_in_it() {
        // systemd's default soft limit, with no room to raise it.
        let plan = Plan::new(1024, 64, 1024, true);
        assert_eq!(plan.connections, 720);
        let fds = plan.fds.unwrap();
        assert_eq!(fds.total, 240);
        assert!(plan.connections + fds.total <= 1024 - 64);
        // A daemon that takes no descriptors gives connections all of it.
        let plain = Plan::new(1024, 64, 1024, false);
        assert_eq!((plain.connections, plain.fds), (960, None));
        // A small cap is kept when it fits.
        assert_eq!(Plan::new(1024, 64, 16, true).connections, 16);
        // Nothing left: nothing planned, and no overflow.
        let none = Plan::new(10, 64, 1024, true);
        assert_eq!(none.connections, 0);
        assert_eq!(none.fds.unwrap().total, 0);
    }

    #[test]
    fn one_uid_is_held_to_its_share_and_others_keep_theirs() {
        let budget = FdBudget::new(FdLimits::resolve(240));
        let mut a = budget.charge(user(65534));
        let mut b = budget.charge(user(65534));
        assert!(a.hold(20));
        // The same uid on another connection: over the share of 30.
        assert!(!b.hold(16));
        assert!(b.hold(10));
        assert_eq!(budget.held(), 30);
        // Another uid has a share of its own.
        let mut c = budget.charge(user(4000));
        assert!(c.hold(30));
        // Giving back makes room again.
        assert!(a.hold(4));
        assert!(b.hold(26));
        drop((a, b, c));
        assert_eq!(budget.held(), 0);
    }

    #[test]
    fn unprivileged_users_together_leave_the_reserve_to_root() {
        let limits = FdLimits::resolve(240);
        let budget = FdBudget::new(limits);
        let mut held = Vec::new();
        // Seven uids at their share of 30: 210, all the reserve leaves.
        for uid in 1000..1007 {
            let mut c = budget.charge(user(uid));
            assert!(c.hold(limits.per_uid), "uid {uid}");
            held.push(c);
        }
        let mut eighth = budget.charge(user(1007));
        assert!(!eighth.hold(1), "past the unreserved part");
        let mut root = budget.charge(ROOT);
        assert!(root.hold(limits.reserved));
        // Root may not go past the total either.
        assert!(!root.hold(limits.reserved + 1));
    }

    #[test]
    fn a_refused_charge_changes_nothing() {
        let budget = FdBudget::new(FdLimits::resolve(240));
        let mut a = budget.charge(user(1));
        assert!(a.hold(10));
        assert!(!a.hold(31));
        assert_eq!(budget.held(), 10);
        drop(a);
        assert_eq!(budget.held(), 0);
        assert!(budget.held.lock().unwrap().by_uid.is_empty());
    }
}
