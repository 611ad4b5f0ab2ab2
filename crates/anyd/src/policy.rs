//! Who may call what: allow rules over the caller's credentials.

use std::fmt;

use crate::error::{Error, Result};
use crate::transport::Peer;

/// An allow rule: which callers may call (the whole daemon, or one
/// endpoint). Rules combine with [`or`](Allow::or).
///
/// Rules look at the credentials the kernel gives for a Unix socket peer
/// (uid, gid, supplementary groups). A TCP caller has none, so only
/// [`Allow::anyone`] admits it.
///
/// User and group names are resolved when the daemon binds, through the C
/// library's user and group databases (NSS: the names `id` and `getent`
/// know, from `/etc/passwd` and `/etc/group` or from LDAP, sssd,
/// systemd-userdb); an unknown name is a configuration error then, not a
/// silent denial later.
///
/// ```
/// use anyd::Allow;
/// let rule = Allow::group("vpn").or(Allow::root());
/// assert_eq!(rule.to_string(), "group vpn or root");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allow {
    any_of: Vec<Rule>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Rule {
    Anyone,
    Root,
    SameUser,
    Uid(u32),
    User(String),
    Gid(u32),
    Group(String),
}

impl Allow {
    fn one(rule: Rule) -> Self {
        Allow { any_of: vec![rule] }
    }

    /// Every caller, TCP included.
    pub fn anyone() -> Self {
        Self::one(Rule::Anyone)
    }

    /// Callers running as root (uid 0).
    pub fn root() -> Self {
        Self::one(Rule::Root)
    }

    /// Callers running as the daemon's own user.
    pub fn same_user() -> Self {
        Self::one(Rule::SameUser)
    }

    /// Callers with this uid.
    pub fn uid(uid: u32) -> Self {
        Self::one(Rule::Uid(uid))
    }

    /// Callers running as this user name.
    pub fn user(name: impl Into<String>) -> Self {
        Self::one(Rule::User(name.into()))
    }

    /// Callers whose primary or supplementary groups include this gid.
    pub fn gid(gid: u32) -> Self {
        Self::one(Rule::Gid(gid))
    }

    /// Callers who are members of this group (primary or supplementary).
    pub fn group(name: impl Into<String>) -> Self {
        Self::one(Rule::Group(name.into()))
    }

    /// Callers this rule or `other` admits.
    pub fn or(mut self, other: Allow) -> Self {
        self.any_of.extend(other.any_of);
        self
    }

    /// Resolves names to ids, so that checks are cheap and an unknown name
    /// fails at startup. `own_uid` is the user the daemon serves as (after
    /// any `run_as`), which [`Allow::same_user`] means.
    pub(crate) fn resolve(&self, own_uid: u32) -> Result<Resolved> {
        let mut resolved = Resolved::default();
        for rule in &self.any_of {
            match rule {
                Rule::Anyone => resolved.anyone = true,
                Rule::Root => resolved.uids.push(0),
                Rule::SameUser => resolved.uids.push(own_uid),
                Rule::Uid(u) => resolved.uids.push(*u),
                Rule::Gid(g) => resolved.gids.push(*g),
                Rule::User(name) => resolved.uids.push(
                    crate::sys::users::user_by_name(name)?
                        .ok_or_else(|| Error::Config(format!("no user named {name:?}")))?
                        .uid,
                ),
                Rule::Group(name) => resolved.gids.push(
                    crate::sys::users::group_by_name(name)?
                        .ok_or_else(|| Error::Config(format!("no group named {name:?}")))?,
                ),
            }
        }
        resolved.shown = self.to_string();
        Ok(resolved)
    }
}

impl fmt::Display for Allow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, rule) in self.any_of.iter().enumerate() {
            if i > 0 {
                f.write_str(" or ")?;
            }
            match rule {
                Rule::Anyone => f.write_str("anyone")?,
                Rule::Root => f.write_str("root")?,
                Rule::SameUser => f.write_str("the daemon's user")?,
                Rule::Uid(u) => write!(f, "uid {u}")?,
                Rule::User(n) => write!(f, "user {n}")?,
                Rule::Gid(g) => write!(f, "gid {g}")?,
                Rule::Group(n) => write!(f, "group {n}")?,
            }
        }
        Ok(())
    }
}

/// An [`Allow`] with names turned into ids.
#[derive(Debug, Clone, Default)]
pub(crate) struct Resolved {
    anyone: bool,
    uids: Vec<u32>,
    gids: Vec<u32>,
    shown: String,
}

impl Resolved {
    pub(crate) fn admits(&self, peer: &Peer) -> bool {
        if self.anyone {
            return true;
        }
        let Some(uid) = peer.uid() else {
            return false;
        };
        self.uids.contains(&uid) || peer.groups().iter().any(|g| self.gids.contains(g))
    }

    /// What the rule asks for, for error messages.
    pub(crate) fn shown(&self) -> &str {
        &self.shown
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_resolve_and_unknown_names_are_errors() {
        let r = Allow::user("root")
            .or(Allow::group("root"))
            .or(Allow::same_user())
            .resolve(4242)
            .unwrap();
        assert_eq!(r.uids, [0, 4242]);
        assert_eq!(r.gids, [0]);
        let e = Allow::group("no-such-group-anyd").resolve(0).unwrap_err();
        assert!(e.to_string().contains("no-such-group-anyd"), "{e}");
        assert!(Allow::user("no-such-user-anyd").resolve(0).is_err());
    }

    #[test]
    fn display_lists_the_rules() {
        let a = Allow::uid(5).or(Allow::same_user()).or(Allow::anyone());
        assert_eq!(a.to_string(), "uid 5 or the daemon's user or anyone");
    }
}
