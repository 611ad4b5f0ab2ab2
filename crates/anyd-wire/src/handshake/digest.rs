//! The digests a challenge may name, and the HMAC over each.
//!
//! This file owns the list of allowed names (Python's `_ALLOWED_DIGESTS`) and
//! the MAC computation. Where a name sits in a message, and what a reply looks
//! like, belongs to `challenge.rs`.

use std::fmt;

use hmac::digest::KeyInit;
use hmac::{Hmac, Mac};

/// A hash function allowed in the handshake, named as Python's `hashlib`
/// names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Digest {
    /// MD5: the only digest of the legacy protocol (Python 3.11 and older).
    Md5,
    /// SHA-256: what Python 3.12+ asks for, and our default.
    #[default]
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA3-256.
    Sha3_256,
    /// SHA3-384.
    Sha3_384,
}

impl Digest {
    /// Every allowed digest, in the order of [`Digest`]'s variants.
    pub const ALL: [Digest; 5] = [
        Digest::Md5,
        Digest::Sha256,
        Digest::Sha384,
        Digest::Sha3_256,
        Digest::Sha3_384,
    ];

    /// The name between the braces of a `{name}` prefix, e.g. `"sha256"`.
    pub const fn name(self) -> &'static str {
        match self {
            Digest::Md5 => "md5",
            Digest::Sha256 => "sha256",
            Digest::Sha384 => "sha384",
            Digest::Sha3_256 => "sha3_256",
            Digest::Sha3_384 => "sha3_384",
        }
    }

    /// The digest with this exact name (case-sensitive, as Python compares
    /// bytes), or `None` if the name is not allowed.
    pub fn from_name(name: impl AsRef<[u8]>) -> Option<Self> {
        let name = name.as_ref();
        Self::ALL.into_iter().find(|d| d.name().as_bytes() == name)
    }

    /// The length of this digest's MAC, in bytes.
    pub const fn output_len(self) -> usize {
        match self {
            Digest::Md5 => 16,
            Digest::Sha256 | Digest::Sha3_256 => 32,
            Digest::Sha384 | Digest::Sha3_384 => 48,
        }
    }

    /// HMAC of `message` under `key` with this digest.
    pub fn mac(self, key: &[u8], message: &[u8]) -> Vec<u8> {
        match self {
            Digest::Md5 => mac_with::<Hmac<md5::Md5>>(key, message),
            Digest::Sha256 => mac_with::<Hmac<sha2::Sha256>>(key, message),
            Digest::Sha384 => mac_with::<Hmac<sha2::Sha384>>(key, message),
            Digest::Sha3_256 => mac_with::<Hmac<sha3::Sha3_256>>(key, message),
            Digest::Sha3_384 => mac_with::<Hmac<sha3::Sha3_384>>(key, message),
        }
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The longest allowed name: a `}` further from the `{` than this cannot
/// close a digest name (Python's `_MAX_DIGEST_LEN`).
pub(crate) const MAX_NAME_LEN: usize = 8;

fn mac_with<M: Mac + KeyInit>(key: &[u8], message: &[u8]) -> Vec<u8> {
    // HMAC hashes or pads a key of any length, so this cannot fail; `KeyInit`
    // returns a `Result` only because other MACs have fixed key sizes.
    let Ok(mut mac) = <M as KeyInit>::new_from_slice(key) else {
        unreachable!("HMAC accepts keys of any length")
    };
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for digest in Digest::ALL {
            assert_eq!(Digest::from_name(digest.name()), Some(digest));
            assert_eq!(Digest::from_name(digest.name().as_bytes()), Some(digest));
            assert_eq!(digest.to_string(), digest.name());
        }
    }

    #[test]
    fn unknown_names_are_refused() {
        for name in [
            "", "MD5", "SHA256", "sha1", "sha512", "sha3-256", "sha256 ", "{sha256}", "blake2b",
        ] {
            assert_eq!(Digest::from_name(name), None, "{name:?}");
        }
    }

    #[test]
    fn max_name_len_is_the_longest_name() {
        let longest = Digest::ALL.iter().map(|d| d.name().len()).max();
        assert_eq!(longest, Some(MAX_NAME_LEN));
    }

    #[test]
    fn output_len_matches_mac() {
        for digest in Digest::ALL {
            assert_eq!(
                digest.mac(b"k", b"m").len(),
                digest.output_len(),
                "{digest}"
            );
        }
    }

    #[test]
    fn default_is_sha256() {
        assert_eq!(Digest::default(), Digest::Sha256);
    }
}
