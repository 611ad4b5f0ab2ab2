//! A call's arguments as sent: the values read from the command line, with
//! the descriptors `--fd` and `--file` give in place of their
//! placeholders. The counterpart of `received`.
//!
//! On the wire a descriptor is a placeholder, `{"$fd": n}`, naming the
//! n-th descriptor attached to the frame (docs/PROTOCOL.md section 8.2);
//! the library attaches one for each [`Fd`] it serializes, numbering them
//! as they come. So the arguments are serialized as the values they are,
//! except that a placeholder the user wrote, `{"$fd": i}`, is serialized
//! as the i-th descriptor given: the library writes its own placeholder
//! there, and attaches that descriptor.
//!
//! How the descriptors find their parameters ([`place`]): numbered 0, 1,
//! ... in the order given, they follow the positional arguments when no
//! argument names one; otherwise every one of them is named by a
//! placeholder, exactly once. Without `--fd` or `--file` nothing changes:
//! a placeholder-shaped map is data, as it always was.

use std::fs::File;

use anyd::{Fd, Value};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};

use crate::cli::FdSource;

/// The placeholder's one key (docs/PROTOCOL.md section 8.2).
const FD_KEY: &str = "$fd";

/// Takes the descriptors `sources` name, in order: a copy of an inherited
/// one, or a file opened read-only.
///
/// # Errors
///
/// Why one cannot be had, in words.
pub(crate) fn open(sources: &[FdSource]) -> Result<Vec<Fd>, String> {
    sources
        .iter()
        .map(|source| match source {
            FdSource::Inherited(n) => crate::sys::dup_inherited(*n)
                .map(Fd::from)
                .map_err(|why| format!("--fd {n}: {why}")),
            FdSource::File(path) => File::open(path)
                .map(Fd::from)
                .map_err(|e| format!("cannot open --file {}: {e}", path.display())),
        })
        .collect()
}

/// The descriptor a value names if it is exactly a placeholder, `{"$fd":
/// n}` with an integer n (which may be out of range: [`place`] says so).
fn placeholder(v: &Value) -> Option<i128> {
    match v {
        Value::Map(entries) => match entries.as_slice() {
            [(Value::Str(key), Value::Int(n))] if key == FD_KEY => Some(*n),
            _ => None,
        },
        _ => None,
    }
}

/// Every placeholder in `v`, in order, at any depth.
fn placeholders(v: &Value, found: &mut Vec<i128>) {
    if let Some(n) = placeholder(v) {
        found.push(n);
        return;
    }
    match v {
        Value::List(items) => items.iter().for_each(|i| placeholders(i, found)),
        Value::Map(entries) => entries.iter().for_each(|(_, v)| placeholders(v, found)),
        _ => {}
    }
}

/// Says where the `given` descriptors go, and checks that each goes
/// somewhere once: after the positional arguments when none of `args`
/// and `kwargs` names one (then `args` gets their placeholders), or where
/// their placeholders are. Returns what `--verbose` says of it.
///
/// # Errors
///
/// A placeholder that names no descriptor given, or one named twice, or a
/// descriptor named nowhere; `flags` says how each was given.
pub(crate) fn place(
    args: &mut Vec<Value>,
    kwargs: &[(String, Value)],
    flags: &[String],
) -> Result<Option<String>, String> {
    if flags.is_empty() {
        return Ok(None);
    }
    let mut found = Vec::new();
    args.iter().for_each(|v| placeholders(v, &mut found));
    kwargs.iter().for_each(|(_, v)| placeholders(v, &mut found));
    if found.is_empty() {
        let first = args.len() + 1;
        for i in 0..flags.len() {
            let n = Value::Int(i128::try_from(i).unwrap_or(i128::MAX));
            args.push(Value::Map(vec![(Value::Str(FD_KEY.to_owned()), n)]));
        }
        let last = args.len();
        return Ok(Some(if first == last {
            format!("{} is ARG {first}", flags[0])
        } else {
            format!(
                "{} are ARG {first} to {last}, in that order",
                flags.join(", ")
            )
        }));
    }
    let mut named = vec![false; flags.len()];
    for n in found {
        let i = usize::try_from(n)
            .ok()
            .filter(|&i| i < flags.len())
            .ok_or_else(|| {
                format!(
                    "{{\"$fd\": {n}}} names descriptor {n}, but --fd and --file give {} \
                     (numbered from 0 in the order given)",
                    flags.len()
                )
            })?;
        if std::mem::replace(&mut named[i], true) {
            return Err(format!(
                "{{\"$fd\": {i}}} ({}) is named twice: each descriptor goes to one place",
                flags[i]
            ));
        }
    }
    if let Some(i) = named.iter().position(|&n| !n) {
        return Err(format!(
            "{} is descriptor {i}, but no {{\"$fd\": {i}}} in the arguments names it (name \
             every one, or none: then they follow the ARGs)",
            flags[i]
        ));
    }
    Ok(Some(format!(
        "{} go where their {{\"$fd\": n}} are",
        flags.join(", ")
    )))
}

/// A value to send, placeholders for the descriptors `fds` as those.
struct Sent<'a> {
    value: &'a Value,
    fds: &'a [Fd],
}

impl Serialize for Sent<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // Without descriptors, a placeholder is data (and the value is
        // written as it always was).
        if self.fds.is_empty() {
            return self.value.serialize(s);
        }
        if let Some(n) = placeholder(self.value) {
            // `place` checked that it names one of them.
            let fd = usize::try_from(n).ok().and_then(|i| self.fds.get(i));
            return match fd {
                Some(fd) => fd.serialize(s),
                None => Err(serde::ser::Error::custom(format!(
                    "{{\"$fd\": {n}}} names no descriptor given"
                ))),
            };
        }
        let fds = self.fds;
        match self.value {
            Value::List(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for value in items {
                    seq.serialize_element(&Sent { value, fds })?;
                }
                seq.end()
            }
            Value::Map(entries) => {
                let mut map = s.serialize_map(Some(entries.len()))?;
                for (k, value) in entries {
                    map.serialize_entry(k, &Sent { value, fds })?;
                }
                map.end()
            }
            other => other.serialize(s),
        }
    }
}

/// Positional arguments to send: a list.
pub(crate) struct Args<'a> {
    /// The values, placeholders among them.
    pub(crate) values: &'a [Value],
    /// The descriptors given, in order.
    pub(crate) fds: &'a [Fd],
}

impl Serialize for Args<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.values.len()))?;
        for value in self.values {
            seq.serialize_element(&Sent {
                value,
                fds: self.fds,
            })?;
        }
        seq.end()
    }
}

/// Keyword arguments to send: a map with string keys.
pub(crate) struct Kwargs<'a> {
    /// The names and values, in the order given.
    pub(crate) entries: &'a [(String, Value)],
    /// The descriptors given, in order.
    pub(crate) fds: &'a [Fd],
}

impl Serialize for Kwargs<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.entries.len()))?;
        for (name, value) in self.entries {
            map.serialize_entry(
                name,
                &Sent {
                    value,
                    fds: self.fds,
                },
            )?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(text: &str) -> Value {
        serde_json::from_str(text).unwrap()
    }

    fn flags(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("--fd {}", 10 + i)).collect()
    }

    #[test]
    fn without_placeholders_descriptors_follow_the_args() {
        let mut args = vec![json("1")];
        let said = place(&mut args, &[], &flags(2)).unwrap().unwrap();
        assert_eq!(
            args,
            [json("1"), json(r#"{"$fd":0}"#), json(r#"{"$fd":1}"#)]
        );
        assert_eq!(said, "--fd 10, --fd 11 are ARG 2 to 3, in that order");
        // None given: nothing changes, placeholders included.
        let mut args = vec![json(r#"{"$fd":0}"#)];
        assert_eq!(place(&mut args, &[], &[]).unwrap(), None);
        assert_eq!(args, [json(r#"{"$fd":0}"#)]);
    }

    #[test]
    fn placeholders_name_each_descriptor_once() {
        let kwargs = vec![("log".to_owned(), json(r#"{"$fd":1}"#))];
        let mut args = vec![json(r#"{"config": {"$fd": 0}, "n": 1}"#)];
        assert!(place(&mut args, &kwargs, &flags(2)).is_ok());
        assert_eq!(args.len(), 1);
        let wrong = |args: &str, n: usize, why: &str| {
            let mut args = vec![json(args)];
            let e = place(&mut args, &[], &flags(n)).unwrap_err();
            assert!(e.contains(why), "{e}");
        };
        wrong(
            r#"{"$fd":2}"#,
            2,
            "names descriptor 2, but --fd and --file give 2",
        );
        wrong(r#"{"$fd":-1}"#, 1, "names descriptor -1");
        wrong(r#"[{"$fd":0},{"$fd":0}]"#, 1, "is named twice");
        wrong(r#"[{"$fd":1}]"#, 2, "--fd 10 is descriptor 0, but no");
    }

    #[test]
    fn without_descriptors_the_arguments_serialize_as_values() {
        let values = vec![json(r#"[{"$fd":0},{"a":{"$fd":1}},"x"]"#)];
        let entries = vec![("k".to_owned(), json(r#"{"$fd":0}"#))];
        let args = Args {
            values: &values,
            fds: &[],
        };
        let kwargs = Kwargs {
            entries: &entries,
            fds: &[],
        };
        assert_eq!(
            serde_json::to_string(&args).unwrap(),
            r#"[[{"$fd":0},{"a":{"$fd":1}},"x"]]"#
        );
        assert_eq!(
            serde_json::to_string(&kwargs).unwrap(),
            r#"{"k":{"$fd":0}}"#
        );
    }

    #[test]
    fn with_descriptors_placeholders_become_them() {
        // Outside a frame's context a descriptor does not serialize (the
        // library says why): proof that the placeholder became the `Fd`.
        let (r, _w) = rustix::pipe::pipe().unwrap();
        let fds = [Fd::from(r)];
        let values = vec![json(r#"{"a":[{"$fd":0}]}"#)];
        let e = serde_json::to_string(&Args {
            values: &values,
            fds: &fds,
        })
        .unwrap_err();
        assert!(e.to_string().contains("Unix socket"), "{e}");
        // Other values are unchanged.
        let values = vec![json(r#"{"a":[1,"$fd"]}"#)];
        assert_eq!(
            serde_json::to_string(&Args {
                values: &values,
                fds: &fds,
            })
            .unwrap(),
            r#"[{"a":[1,"$fd"]}]"#
        );
    }
}
