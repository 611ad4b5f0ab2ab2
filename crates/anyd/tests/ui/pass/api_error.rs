//! `#[derive(ApiError)]` on enums and structs, with kinds from the type
//! name, the type's attribute or a variant's.
#![deny(warnings)]

use anyd::ApiError as _;
use std::fmt;

#[derive(Debug, anyd::ApiError)]
enum VpnError {
    NotConnected,
    #[api_error(kind = "PermissionError")]
    NotAllowed {
        uid: u32,
    },
    Io(std::io::ErrorKind),
}

impl fmt::Display for VpnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VpnError::NotConnected => f.write_str("not connected"),
            VpnError::NotAllowed { uid } => write!(f, "uid {uid} may not"),
            VpnError::Io(kind) => write!(f, "{kind}"),
        }
    }
}

#[derive(Debug, anyd::ApiError)]
#[api_error(kind = "vpn.Busy")]
struct Busy(u32);

impl fmt::Display for Busy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "busy for {} s", self.0)
    }
}

#[derive(Debug, anyd::ApiError)]
struct Wrapped<E: fmt::Display>(E);

impl<E: fmt::Display> fmt::Display for Wrapped<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[derive(Debug, anyd::ApiError)]
enum Never {}

impl fmt::Display for Never {
    fn fmt(&self, _: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {}
    }
}

fn main() {
    let e = VpnError::NotConnected.into_remote();
    assert_eq!((e.kind.as_str(), e.message.as_str()), ("VpnError", "not connected"));
    assert_eq!(VpnError::NotAllowed { uid: 1 }.into_remote().kind, "PermissionError");
    assert_eq!(VpnError::Io(std::io::ErrorKind::NotFound).into_remote().kind, "VpnError");
    let e = Busy(3).into_remote();
    assert_eq!((e.kind.as_str(), e.message.as_str()), ("vpn.Busy", "busy for 3 s"));
    assert_eq!(Wrapped("w").into_remote().kind, "Wrapped");
    let _ = |n: Never| n.into_remote();
}
