//! Where a daemon listens: `unix:/path`, `unix:@name`, `tcp:host:port`.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;

use crate::error::{Error, Result};

/// The address of a daemon.
///
/// Written as a string in configuration and on the command line:
///
/// | form | meaning |
/// | --- | --- |
/// | `unix:/run/app.sock` or `/run/app.sock` | a Unix socket file |
/// | `unix:@app` | a Linux abstract Unix socket (no file) |
/// | `tcp:127.0.0.1:7000`, `tcp:[::1]:7000`, `tcp:localhost:7000` | TCP |
///
/// ```
/// use anyd::Address;
/// let a: Address = "unix:/tmp/echod.sock".parse().unwrap();
/// assert_eq!(a, Address::Unix("/tmp/echod.sock".into()));
/// assert_eq!(a.to_string(), "unix:/tmp/echod.sock");
/// assert!("tcp:localhost".parse::<Address>().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Address {
    /// A Unix socket file.
    Unix(PathBuf),
    /// A Linux abstract socket name (without the leading NUL byte).
    Abstract(Vec<u8>),
    /// A TCP host (name or IP literal, without brackets) and port.
    Tcp {
        /// Host name or IP address.
        host: String,
        /// Port number; 0 asks the system for a free one when binding.
        port: u16,
    },
}

impl Address {
    /// Resolves a TCP address to socket addresses (a name may give several).
    #[cfg(any(feature = "client", feature = "server"))]
    pub(crate) fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>> {
        use std::net::ToSocketAddrs;
        let addrs: Vec<SocketAddr> = (host, port)
            .to_socket_addrs()
            .map_err(|e| Error::system(format!("resolve {host}"), e))?
            .collect();
        if addrs.is_empty() {
            return Err(Error::Config(format!("{host} resolves to no address")));
        }
        Ok(addrs)
    }
}

impl FromStr for Address {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let bad = |why: &str| Error::Config(format!("bad address {s:?}: {why}"));
        if let Some(rest) = s.strip_prefix("unix:") {
            if let Some(name) = rest.strip_prefix('@') {
                if name.is_empty() {
                    return Err(bad("an abstract socket needs a name after '@'"));
                }
                return Ok(Address::Abstract(name.as_bytes().to_vec()));
            }
            if rest.is_empty() {
                return Err(bad("a Unix socket needs a path"));
            }
            return Ok(Address::Unix(PathBuf::from(rest)));
        }
        if let Some(rest) = s.strip_prefix("tcp:") {
            let (host, port) = rest
                .rsplit_once(':')
                .ok_or_else(|| bad("expected tcp:HOST:PORT"))?;
            let host = host
                .strip_prefix('[')
                .and_then(|h| h.strip_suffix(']'))
                .unwrap_or(host);
            if host.is_empty() {
                return Err(bad("expected tcp:HOST:PORT"));
            }
            if host.contains(':') && !rest.starts_with('[') {
                return Err(bad("write an IPv6 host in brackets: tcp:[::1]:PORT"));
            }
            let port = port
                .parse()
                .map_err(|_| bad("the port must be a number from 0 to 65535"))?;
            return Ok(Address::Tcp {
                host: host.to_owned(),
                port,
            });
        }
        if s.starts_with('/') || s.starts_with("./") || s.starts_with("../") {
            return Ok(Address::Unix(PathBuf::from(s)));
        }
        Err(bad(
            "expected unix:/path, unix:@name, tcp:host:port, or an absolute path",
        ))
    }
}

/// Anything that names an [`Address`]: the string forms, or an address.
pub trait ToAddress {
    /// The address.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for a string that is not an address.
    fn to_address(self) -> Result<Address>;
}

impl ToAddress for Address {
    fn to_address(self) -> Result<Address> {
        Ok(self)
    }
}

impl ToAddress for &Address {
    fn to_address(self) -> Result<Address> {
        Ok(self.clone())
    }
}

impl ToAddress for &str {
    fn to_address(self) -> Result<Address> {
        self.parse()
    }
}

impl ToAddress for String {
    fn to_address(self) -> Result<Address> {
        self.parse()
    }
}

impl ToAddress for &String {
    fn to_address(self) -> Result<Address> {
        self.parse()
    }
}

impl ToAddress for SocketAddr {
    fn to_address(self) -> Result<Address> {
        Ok(self.into())
    }
}

impl From<SocketAddr> for Address {
    fn from(a: SocketAddr) -> Self {
        Address::Tcp {
            host: a.ip().to_string(),
            port: a.port(),
        }
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Unix(p) => write!(f, "unix:{}", p.display()),
            Address::Abstract(n) => write!(f, "unix:@{}", String::from_utf8_lossy(n)),
            Address::Tcp { host, port } if host.contains(':') => write!(f, "tcp:[{host}]:{port}"),
            Address::Tcp { host, port } => write!(f, "tcp:{host}:{port}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        let ok = |s: &str| s.parse::<Address>().unwrap();
        assert_eq!(ok("/run/a.sock"), Address::Unix("/run/a.sock".into()));
        assert_eq!(ok("unix:rel.sock"), Address::Unix("rel.sock".into()));
        assert_eq!(ok("unix:@anyd"), Address::Abstract(b"anyd".to_vec()));
        assert_eq!(
            ok("tcp:[::1]:7000"),
            Address::Tcp {
                host: "::1".into(),
                port: 7000
            }
        );
        assert_eq!(
            ok("tcp:127.0.0.1:0"),
            Address::Tcp {
                host: "127.0.0.1".into(),
                port: 0
            }
        );
        for s in ["tcp:[::1]:7000", "unix:/a b", "unix:@x", "tcp:localhost:1"] {
            assert_eq!(ok(s).to_string(), s);
        }
    }

    #[test]
    fn bad_forms_say_why() {
        for s in [
            "",
            "unix:",
            "unix:@",
            "tcp:",
            "tcp:host",
            "tcp::80",
            "tcp:h:99999",
            "tcp:::1:80",
            "relative.sock",
            "http://x",
        ] {
            let e = s.parse::<Address>().unwrap_err().to_string();
            assert!(e.contains("bad address"), "{s}: {e}");
        }
    }
}
