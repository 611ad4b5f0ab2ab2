//! Linux capabilities across a privilege drop: the [`Capability`] names a
//! daemon passes to [`Appd::keep_capabilities`](crate::Appd::keep_capabilities),
//! and the steps around the switch of user that keep those and shed every
//! other (`daemon::drop_privileges` runs them). Who the daemon becomes,
//! and when, is `daemon.rs`'s.
//!
//! Every step goes through rustix's safe wrappers of `capget`, `capset`
//! and `prctl`, so none needs `unsafe`. Each acts on the calling thread
//! only: Linux keeps capabilities per thread, and a thread starts with
//! those of the thread that started it.

use std::fmt;

use rustix::thread::{self as thread, CapabilitySet, CapabilitySets};

use crate::error::{Error, Result};

macro_rules! capabilities {
    ($($(#[$doc:meta])* $variant:ident = $number:literal, $name:literal;)*) => {
        /// A Linux capability (capabilities(7)), for a daemon to keep when
        /// it drops root ([`Appd::keep_capabilities`](crate::Appd::keep_capabilities)).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        pub enum Capability {
            $($(#[$doc])* $variant = $number,)*
        }

        impl Capability {
            /// Every capability this type names, by number.
            pub const ALL: &'static [Capability] = &[$(Capability::$variant),*];

            /// Its name as capabilities(7) and `/proc` tools write it
            /// (`CAP_NET_ADMIN`).
            pub fn name(self) -> &'static str {
                match self {
                    $(Capability::$variant => $name,)*
                }
            }
        }
    };
}

capabilities! {
    /// `CAP_CHOWN`: change the owner and group of any file.
    Chown = 0, "CAP_CHOWN";
    /// `CAP_DAC_OVERRIDE`: read, write and execute any file, whatever its
    /// permissions.
    DacOverride = 1, "CAP_DAC_OVERRIDE";
    /// `CAP_DAC_READ_SEARCH`: read any file and search any directory.
    DacReadSearch = 2, "CAP_DAC_READ_SEARCH";
    /// `CAP_FOWNER`: act as the owner of any file (modes, times, ACLs).
    Fowner = 3, "CAP_FOWNER";
    /// `CAP_FSETID`: keep set-user-ID and set-group-ID bits on changes.
    Fsetid = 4, "CAP_FSETID";
    /// `CAP_KILL`: send signals to any process.
    Kill = 5, "CAP_KILL";
    /// `CAP_SETGID`: change group ids.
    Setgid = 6, "CAP_SETGID";
    /// `CAP_SETUID`: change user ids (which gives root back: a drop that
    /// keeps it is refused).
    Setuid = 7, "CAP_SETUID";
    /// `CAP_SETPCAP`: change capability sets and the bounding set.
    Setpcap = 8, "CAP_SETPCAP";
    /// `CAP_LINUX_IMMUTABLE`: set the immutable and append-only flags.
    LinuxImmutable = 9, "CAP_LINUX_IMMUTABLE";
    /// `CAP_NET_BIND_SERVICE`: bind ports below 1024.
    NetBindService = 10, "CAP_NET_BIND_SERVICE";
    /// `CAP_NET_BROADCAST`: broadcast and listen to multicast.
    NetBroadcast = 11, "CAP_NET_BROADCAST";
    /// `CAP_NET_ADMIN`: network administration: interfaces, tunnels
    /// (`/dev/net/tun`), routes, firewall rules.
    NetAdmin = 12, "CAP_NET_ADMIN";
    /// `CAP_NET_RAW`: raw and packet sockets.
    NetRaw = 13, "CAP_NET_RAW";
    /// `CAP_IPC_LOCK`: lock memory.
    IpcLock = 14, "CAP_IPC_LOCK";
    /// `CAP_IPC_OWNER`: bypass permission checks on System V IPC.
    IpcOwner = 15, "CAP_IPC_OWNER";
    /// `CAP_SYS_MODULE`: load and unload kernel modules.
    SysModule = 16, "CAP_SYS_MODULE";
    /// `CAP_SYS_RAWIO`: raw I/O (`iopl`, `/dev/mem`).
    SysRawio = 17, "CAP_SYS_RAWIO";
    /// `CAP_SYS_CHROOT`: `chroot`.
    SysChroot = 18, "CAP_SYS_CHROOT";
    /// `CAP_SYS_PTRACE`: trace any process.
    SysPtrace = 19, "CAP_SYS_PTRACE";
    /// `CAP_SYS_PACCT`: process accounting.
    SysPacct = 20, "CAP_SYS_PACCT";
    /// `CAP_SYS_ADMIN`: a long list of administration (mounts, namespaces,
    /// ...); close to root.
    SysAdmin = 21, "CAP_SYS_ADMIN";
    /// `CAP_SYS_BOOT`: reboot.
    SysBoot = 22, "CAP_SYS_BOOT";
    /// `CAP_SYS_NICE`: raise priorities, set scheduling policies.
    SysNice = 23, "CAP_SYS_NICE";
    /// `CAP_SYS_RESOURCE`: override resource limits.
    SysResource = 24, "CAP_SYS_RESOURCE";
    /// `CAP_SYS_TIME`: set the system clock.
    SysTime = 25, "CAP_SYS_TIME";
    /// `CAP_SYS_TTY_CONFIG`: `vhangup` and other terminal configuration.
    SysTtyConfig = 26, "CAP_SYS_TTY_CONFIG";
    /// `CAP_MKNOD`: create device files.
    Mknod = 27, "CAP_MKNOD";
    /// `CAP_LEASE`: take leases on any file.
    Lease = 28, "CAP_LEASE";
    /// `CAP_AUDIT_WRITE`: write to the kernel's audit log.
    AuditWrite = 29, "CAP_AUDIT_WRITE";
    /// `CAP_AUDIT_CONTROL`: configure auditing.
    AuditControl = 30, "CAP_AUDIT_CONTROL";
    /// `CAP_SETFCAP`: set file capabilities.
    Setfcap = 31, "CAP_SETFCAP";
    /// `CAP_MAC_OVERRIDE`: override mandatory access control.
    MacOverride = 32, "CAP_MAC_OVERRIDE";
    /// `CAP_MAC_ADMIN`: configure mandatory access control.
    MacAdmin = 33, "CAP_MAC_ADMIN";
    /// `CAP_SYSLOG`: privileged `syslog` operations.
    Syslog = 34, "CAP_SYSLOG";
    /// `CAP_WAKE_ALARM`: timers that wake the system.
    WakeAlarm = 35, "CAP_WAKE_ALARM";
    /// `CAP_BLOCK_SUSPEND`: keep the system from suspending.
    BlockSuspend = 36, "CAP_BLOCK_SUSPEND";
    /// `CAP_AUDIT_READ`: read the audit log.
    AuditRead = 37, "CAP_AUDIT_READ";
    /// `CAP_PERFMON`: performance monitoring.
    Perfmon = 38, "CAP_PERFMON";
    /// `CAP_BPF`: BPF programs and maps.
    Bpf = 39, "CAP_BPF";
    /// `CAP_CHECKPOINT_RESTORE`: checkpoint and restore processes.
    CheckpointRestore = 40, "CAP_CHECKPOINT_RESTORE";
}

impl Capability {
    /// Its number, the bit it is in the kernel's sets (`CAP_NET_ADMIN` is
    /// 12).
    pub fn number(self) -> u32 {
        self as u32
    }

    fn set(self) -> CapabilitySet {
        CapabilitySet::from_bits_retain(1 << self.number())
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The capabilities a daemon keeps across its drop of privileges, and the
/// steps that keep them (see `daemon::drop_privileges` for the order).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Keep(Vec<Capability>);

impl Keep {
    pub(crate) fn new(capabilities: impl IntoIterator<Item = Capability>) -> Keep {
        let mut caps: Vec<Capability> = capabilities.into_iter().collect();
        caps.sort();
        caps.dedup();
        Keep(caps)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn mask(&self) -> CapabilitySet {
        self.0
            .iter()
            .fold(CapabilitySet::empty(), |set, c| set | c.set())
    }

    /// `CAP_NET_ADMIN, CAP_NET_RAW`, for messages.
    pub(crate) fn names(&self) -> String {
        let names: Vec<&str> = self.0.iter().map(|c| c.name()).collect();
        names.join(", ")
    }

    /// While still privileged, before the user changes: takes every
    /// capability not kept out of this thread's bounding set (so that no
    /// program the daemon runs later can get it back, not even a
    /// set-user-ID one), checks that the kept ones are there to keep, and
    /// asks the kernel to leave the permitted set alone when the user
    /// changes (`PR_SET_KEEPCAPS`; otherwise leaving uid 0 empties it).
    ///
    /// The bounding set can only shrink with `CAP_SETPCAP`: a process
    /// without it (not root, or a service manager took it away) keeps the
    /// bounding set it was given, which then already bounds it.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming a kept capability the thread does not
    /// have; [`Error::System`] when the kernel refuses a step.
    pub(crate) fn before_switch(&self) -> Result<()> {
        let system = |what: &str, e: rustix::io::Errno| Error::system(what.to_owned(), e);
        let now = thread::capabilities(None).map_err(|e| system("read the capabilities", e))?;
        let missing: Vec<&str> = self
            .0
            .iter()
            .filter(|c| !now.permitted.contains(c.set()))
            .map(|c| c.name())
            .collect();
        if !missing.is_empty() {
            return Err(Error::Config(format!(
                "cannot keep {}: the daemon does not have {} to keep (start it as root, \
                 or give it the capability)",
                missing.join(", "),
                if missing.len() == 1 { "it" } else { "them" }
            )));
        }
        if now.effective.contains(CapabilitySet::SETPCAP) {
            let keep = self.mask();
            // Every capability the kernel knows: numbers up to the first
            // it calls invalid.
            for number in 0..64u32 {
                let cap = CapabilitySet::from_bits_retain(1 << number);
                match thread::capability_is_in_bounding_set(cap) {
                    Ok(true) if !keep.contains(cap) => {
                        thread::remove_capability_from_bounding_set(cap)
                            .map_err(|e| system("shrink the capability bounding set", e))?;
                    }
                    Ok(_) => {}
                    Err(rustix::io::Errno::INVAL) => break,
                    Err(e) => return Err(system("read the capability bounding set", e)),
                }
            }
        } else {
            tracing::debug!(
                "without CAP_SETPCAP the capability bounding set stays as it was given"
            );
        }
        if !self.is_empty() {
            thread::set_keep_capabilities(true)
                .map_err(|e| system("keep capabilities across the change of user", e))?;
        }
        Ok(())
    }

    /// After the user changed (or failed to): the kept capabilities, and
    /// nothing else, become this thread's permitted, effective and
    /// inheritable sets, and its ambient set, so that a program the
    /// daemon runs (`ip`, say) has them too, as a program run by root
    /// would. Also undoes `PR_SET_KEEPCAPS`.
    ///
    /// # Errors
    ///
    /// [`Error::System`] when the kernel refuses a step.
    pub(crate) fn after_switch(&self) -> Result<()> {
        if self.is_empty() {
            return Ok(());
        }
        let system = |what: &str, e: rustix::io::Errno| Error::system(what.to_owned(), e);
        thread::set_keep_capabilities(false)
            .map_err(|e| system("stop keeping capabilities across changes of user", e))?;
        let keep = self.mask();
        thread::set_capabilities(
            None,
            CapabilitySets {
                effective: keep,
                permitted: keep,
                inheritable: keep,
            },
        )
        .map_err(|e| system(&format!("keep {}", self.names()), e))?;
        for cap in &self.0 {
            thread::configure_capability_in_ambient_set(cap.set(), true)
                .map_err(|e| system(&format!("raise {cap} in the ambient set"), e))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_names_are_the_kernels() {
        // Their place in the list is their number, with no gap.
        for (i, cap) in Capability::ALL.iter().enumerate() {
            assert_eq!(cap.number() as usize, i, "{cap}");
        }
        assert_eq!(Capability::NetAdmin.number(), 12);
        assert_eq!(Capability::NetAdmin.set(), CapabilitySet::NET_ADMIN);
        assert_eq!(
            Capability::CheckpointRestore.set(),
            CapabilitySet::CHECKPOINT_RESTORE
        );
        assert_eq!(Capability::NetAdmin.to_string(), "CAP_NET_ADMIN");
    }

    #[test]
    fn a_set_to_keep_is_sorted_and_without_repeats() {
        let keep = Keep::new([Capability::NetRaw, Capability::NetAdmin, Capability::NetRaw]);
        assert_eq!(keep.names(), "CAP_NET_ADMIN, CAP_NET_RAW");
        assert_eq!(
            keep.mask(),
            CapabilitySet::NET_ADMIN | CapabilitySet::NET_RAW
        );
        assert!(Keep::new([]).is_empty());
    }
}
