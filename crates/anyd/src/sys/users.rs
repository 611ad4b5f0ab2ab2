//! The user and group databases, asked through the C library (NSS), so
//! that the daemon sees what `id` and `getent` see: users and groups from
//! LDAP, sssd or systemd-userdb as well as those in `/etc/passwd` and
//! `/etc/group`. Owns the lookups by name and id and a user's group list;
//! what the answers are used for (policy, dropping privileges, a peer's
//! groups) lives with the callers.
//!
//! The reentrant `_r` functions only: the daemon looks users up from many
//! connection threads at once.

use std::ffi::{CStr, CString};
use std::io;

use crate::error::{Error, Result};

/// A user from the user database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct User {
    pub(crate) name: String,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
}

/// The most buffer a lookup may use: a group with many members needs a
/// large one; anything past this is a broken database.
const MAX_BUFFER: usize = 1 << 20;

/// The most groups one user is taken to have (Linux allows 65536).
const MAX_GROUPS: usize = 65536;

/// Runs a reentrant lookup with a buffer that grows while the C library
/// says it is too small. `call` returns the lookup's status and whether it
/// found an entry.
fn with_buffer<T>(
    what: &dyn Fn() -> String,
    mut call: impl FnMut(&mut [libc::c_char]) -> (libc::c_int, Option<T>),
) -> Result<Option<T>> {
    let mut buf = vec![0 as libc::c_char; 4096];
    loop {
        match call(&mut buf) {
            (0, found) => return Ok(found),
            (libc::ERANGE, _) if buf.len() < MAX_BUFFER => buf.resize(buf.len() * 2, 0),
            (libc::EINTR, _) => {}
            // "Not found" may also come as one of these (getpwnam_r(3)).
            (libc::ENOENT | libc::ESRCH | libc::EBADF | libc::EPERM, _) => return Ok(None),
            (e, _) => {
                return Err(Error::system(
                    format!("look up {}", what()),
                    io::Error::from_raw_os_error(e),
                ))
            }
        }
    }
}

/// A name as C wants it; a name with a NUL byte names nobody.
fn c_name(name: &str) -> Option<CString> {
    CString::new(name).ok()
}

/// Copies what the C library filled in while its buffer is still alive.
///
/// # Safety
///
/// `pwd` must have been filled by a successful `getpw*_r` whose buffer is
/// still alive.
unsafe fn user_of(pwd: &libc::passwd) -> User {
    // SAFETY: pw_name points at a NUL-terminated string in the live buffer
    // (the caller's promise).
    let name = unsafe { CStr::from_ptr(pwd.pw_name) };
    User {
        name: name.to_string_lossy().into_owned(),
        uid: pwd.pw_uid,
        gid: pwd.pw_gid,
    }
}

pub(crate) fn user_by_name(name: &str) -> Result<Option<User>> {
    let Some(c) = c_name(name) else {
        return Ok(None);
    };
    with_buffer(&|| format!("user {name:?}"), |buf| {
        // SAFETY: all-zero is a valid `passwd` (null pointers, zero ids);
        // getpwnam_r fills it.
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut found: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: `c` is NUL-terminated; `pwd`, `buf` (of `buf.len()`
        // bytes) and `found` are live and writable for the call.
        let r = unsafe {
            libc::getpwnam_r(
                c.as_ptr(),
                &mut pwd,
                buf.as_mut_ptr(),
                buf.len(),
                &mut found,
            )
        };
        // SAFETY: a non-null `found` means `pwd` was filled, from `buf`,
        // which lives until the closure returns.
        (
            r,
            (r == 0 && !found.is_null()).then(|| unsafe { user_of(&pwd) }),
        )
    })
}

pub(crate) fn user_by_uid(uid: u32) -> Result<Option<User>> {
    with_buffer(&|| format!("uid {uid}"), |buf| {
        // SAFETY: as in `user_by_name`.
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut found: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: `pwd`, `buf` and `found` are live and writable.
        let r = unsafe { libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut found) };
        // SAFETY: as in `user_by_name`.
        (
            r,
            (r == 0 && !found.is_null()).then(|| unsafe { user_of(&pwd) }),
        )
    })
}

pub(crate) fn group_by_name(name: &str) -> Result<Option<u32>> {
    let Some(c) = c_name(name) else {
        return Ok(None);
    };
    with_buffer(&|| format!("group {name:?}"), |buf| {
        // SAFETY: all-zero is a valid `group`; getgrnam_r fills it.
        let mut grp: libc::group = unsafe { std::mem::zeroed() };
        let mut found: *mut libc::group = std::ptr::null_mut();
        // SAFETY: `c` is NUL-terminated; `grp`, `buf` and `found` are live
        // and writable for the call.
        let r = unsafe {
            libc::getgrnam_r(
                c.as_ptr(),
                &mut grp,
                buf.as_mut_ptr(),
                buf.len(),
                &mut found,
            )
        };
        (r, (r == 0 && !found.is_null()).then_some(grp.gr_gid))
    })
}

/// The groups of `user`, `primary` first: what `initgroups` would give a
/// process of that user.
pub(crate) fn groups_of(user: &str, primary: u32) -> Result<Vec<u32>> {
    let Some(c) = c_name(user) else {
        return Ok(vec![primary]);
    };
    let mut groups: Vec<libc::gid_t> = vec![0; 64];
    loop {
        let mut n = groups.len() as libc::c_int;
        // SAFETY: `c` is NUL-terminated; `groups` has room for `n` gids,
        // and getgrouplist writes at most that many, then stores in `n`
        // how many the user has.
        let r = unsafe { libc::getgrouplist(c.as_ptr(), primary, groups.as_mut_ptr(), &mut n) };
        let n = usize::try_from(n).unwrap_or(0);
        if r >= 0 {
            groups.truncate(n.min(groups.len()));
            break;
        }
        if groups.len() >= MAX_GROUPS {
            return Err(Error::Config(format!(
                "user {user:?} is in more than {MAX_GROUPS} groups"
            )));
        }
        // Too small: the needed count when the C library says it, else
        // twice as much.
        let want = if n > groups.len() {
            n
        } else {
            groups.len() * 2
        };
        groups.resize(want.min(MAX_GROUPS), 0);
    }
    // The primary group first, once.
    groups.retain(|&g| g != primary);
    groups.insert(0, primary);
    Ok(groups)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_and_its_groups() {
        let root = user_by_name("root").unwrap().expect("a root user");
        assert_eq!((root.uid, root.gid), (0, 0));
        assert_eq!(user_by_uid(0).unwrap(), Some(root));
        assert_eq!(group_by_name("root").unwrap(), Some(0));
        assert_eq!(groups_of("root", 0).unwrap().first(), Some(&0));
    }

    #[test]
    fn unknown_names_are_nobody() {
        assert_eq!(user_by_name("no-such-user-anyd").unwrap(), None);
        assert_eq!(user_by_name("nul\0byte").unwrap(), None);
        assert_eq!(group_by_name("no-such-group-anyd").unwrap(), None);
        // A user the database does not know still has its primary group.
        assert_eq!(groups_of("no-such-user-anyd", 4242).unwrap(), [4242]);
    }
}
