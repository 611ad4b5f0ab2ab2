//! Endpoint names: how a signature is read, and how the table of names
//! is hashed.

/// Splits `"get_sum(arg1, arg2)"` into the name and the parameter names;
/// a bare `"echo"` declares no names.
pub(super) fn parse_signature(signature: &str) -> Result<(String, Option<Vec<String>>), String> {
    let signature = signature.trim();
    let (name, params) = match signature.split_once('(') {
        None => (signature, None),
        Some((name, rest)) => {
            let inner = rest
                .strip_suffix(')')
                .ok_or_else(|| format!("{signature:?} lacks its closing parenthesis"))?;
            let names: Vec<String> = inner
                .split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(str::to_owned)
                .collect();
            (name.trim(), Some(names))
        }
    };
    let ident = |s: &str| {
        !s.is_empty()
            && !s.starts_with(|c: char| c.is_ascii_digit())
            && s.chars()
                .all(|c| c.is_alphanumeric() || c == '_' || c == '.')
    };
    if !ident(name) {
        return Err(format!("{name:?} is not a valid endpoint name"));
    }
    if name.starts_with("anyd.") {
        return Err(format!(
            "{name:?}: names starting with \"anyd.\" are reserved"
        ));
    }
    if let Some(names) = &params {
        for (i, p) in names.iter().enumerate() {
            if !ident(p) || p.contains('.') {
                return Err(format!("{p:?} is not a valid parameter name"));
            }
            if names[..i].contains(p) {
                return Err(format!("parameter {p:?} is declared twice"));
            }
        }
    }
    Ok((name.to_owned(), params))
}

/// The hash of the endpoint table: FNV-1a, a few instructions a byte
/// where the default SipHash costs some ninety a call. The table is built
/// once from the daemon's own names and only looked up after: a caller
/// choosing names that collide can only make its own lookups compare a
/// few more of the daemon's names, so the flooding SipHash guards
/// against cannot happen here.
#[derive(Default, Clone, Copy)]
pub(super) struct NameHash;

impl std::hash::BuildHasher for NameHash {
    type Hasher = Fnv1a;
    fn build_hasher(&self) -> Fnv1a {
        Fnv1a(0xcbf2_9ce4_8422_2325)
    }
}

/// FNV-1a, 64 bits.
pub(super) struct Fnv1a(u64);

impl std::hash::Hasher for Fnv1a {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures() {
        assert_eq!(parse_signature("echo").unwrap(), ("echo".into(), None));
        assert_eq!(
            parse_signature(" get_sum( arg1, arg2 ) ").unwrap(),
            ("get_sum".into(), Some(vec!["arg1".into(), "arg2".into()]))
        );
        assert_eq!(
            parse_signature("none()").unwrap(),
            ("none".into(), Some(vec![]))
        );
        for bad in ["", "a(b", "anyd.ping", "a(b, b)", "a b", "1x", "f(x.y)"] {
            assert!(parse_signature(bad).is_err(), "{bad}");
        }
    }
}
