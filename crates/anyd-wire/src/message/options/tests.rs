//! The table's rules, and a set of options of every kind (a test's
//! own) that the codecs' tests write and read, to show that an option
//! of another kind needs no change to them.

pub(crate) use super::ReadOptions;
use super::*;

option_set! {
    /// Options of every kind an option may take, none of them the
    /// protocol's.
    #[derive(Debug, Default, Clone, PartialEq, Eq)]
    pub(crate) struct AllKinds {
        "flag" => pub(crate) flag: bool,
        "number" => pub(crate) number: Option<u64>,
        "text" => pub(crate) text: Option<Box<str>>,
    }
}

/// Every option written, with a string a codec must escape.
pub(crate) fn all_set() -> AllKinds {
    AllKinds {
        flag: true,
        number: Some(u64::MAX),
        text: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01 \"\\é".into()),
    }
}

fn keys_are_plain<O: OptionSet>() {
    assert!(O::KEYS.len() <= 15);
    for (i, key) in O::KEYS.iter().enumerate() {
        assert!(
            (1..32).contains(&key.len())
                && key.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
            "{key:?}"
        );
        assert!(!O::KEYS[..i].contains(key), "{key:?} twice");
    }
}

#[test]
fn keys_need_no_escape_and_are_unique() {
    keys_are_plain::<RequestOptions>();
    keys_are_plain::<AllKinds>();
}

/// What `each` gives, as a list.
pub(crate) fn entries<O: OptionSet>(options: &O) -> Vec<(&'static str, OptionValue<'_>)> {
    let mut entries = Vec::new();
    options.each(&mut |key, value| entries.push((key, value)));
    entries
}

#[test]
fn what_is_written_is_what_is_set() {
    assert!(entries(&RequestOptions::NONE).is_empty());
    assert!(!RequestOptions::NONE.any());
    let both = RequestOptions::NONE.with_fds(true).with_stream(true);
    assert!(both.any());
    assert_eq!(
        entries(&both),
        [
            ("stream", OptionValue::Bool(true)),
            ("fds", OptionValue::Bool(true))
        ]
    );
    assert!(entries(&AllKinds::UNSET).is_empty());
    assert_eq!(AllKinds::UNSET, AllKinds::default());
    assert_eq!(RequestOptions::NONE, RequestOptions::default());
    let set = all_set();
    let keys: Vec<_> = entries(&set).into_iter().map(|(key, _)| key).collect();
    assert_eq!(keys, AllKinds::KEYS);
}

#[test]
fn every_entry_reads_back_into_its_field() {
    let set = all_set();
    let mut read = AllKinds::default();
    for (key, value) in entries(&set) {
        read.set(key.as_bytes(), Ok(value)).unwrap();
    }
    assert_eq!(read, set);
    let both = RequestOptions::NONE.with_fds(true).with_stream(true);
    let mut read = RequestOptions::NONE;
    for (key, value) in entries(&both) {
        assert_eq!(lookup::<RequestOptions>(key.as_bytes()).unwrap(), key);
        read.set(key.as_bytes(), Ok(value)).unwrap();
    }
    assert_eq!(read, both);
}

#[test]
fn unknown_keys_and_other_kinds_are_refused() {
    let e = lookup::<RequestOptions>(b"fast").unwrap_err();
    assert_eq!(e, OptionError::Unknown(b"fast"));
    assert_eq!(e.to_string(), r#"unknown request option "fast""#);
    let mut o = AllKinds::default();
    let e = o.set(b"fast", Err("a list")).unwrap_err();
    assert_eq!(e.to_string(), r#"unknown request option "fast""#);
    let e = o.set(b"number", Ok(OptionValue::Bool(true))).unwrap_err();
    assert_eq!(
        e.to_string(),
        r#"request option "number" takes an unsigned integer, not a boolean"#
    );
    let e = o.set(b"number", Err("a list")).unwrap_err();
    assert_eq!(
        e.to_string(),
        r#"request option "number" takes an unsigned integer, not a list"#
    );
    assert_eq!(o, AllKinds::default());
}
