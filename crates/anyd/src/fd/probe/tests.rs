//! The probe: what it tells apart, what it counts as may, its odometer.

use std::collections::{BTreeMap, HashMap};
use std::num::NonZeroU32;
use std::time::Duration;

use serde::Deserialize;

use super::*;
use crate::Fd;

#[allow(dead_code)] // Probed, never built.
#[derive(Deserialize)]
struct Opened {
    name: String,
    file: Fd,
}

/// No descriptor anywhere, and no field it does not know taken.
#[allow(dead_code)]
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Plain {
    name: String,
    size: NonZeroU32,
    took: Duration,
    tags: BTreeMap<String, Vec<u8>>,
    kind: Kind,
}

#[allow(dead_code)]
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
enum Kind {
    Unit,
    Pair(u8, String),
    Named { at: u64 },
}

/// The descriptor behind the second variant of an enum inside the
/// second variant of another: found only by trying them all.
#[allow(dead_code)]
#[derive(Deserialize)]
enum Outer {
    Nothing,
    Inner(Inner),
}

#[allow(dead_code)]
#[derive(Deserialize)]
enum Inner {
    Text(String),
    Log { file: Option<Fd> },
}

/// No descriptor, but it takes fields it does not know (serde's
/// default), whose values a newer daemon's version of it may make
/// descriptors.
#[allow(dead_code)]
#[derive(Deserialize)]
struct Tolerant {
    name: String,
}

/// A descriptor whose refusal the type's own code swallows.
#[allow(dead_code)]
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Lenient {
    #[serde(deserialize_with = "lenient")]
    log: Option<Fd>,
}

fn lenient<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Fd>, D::Error> {
    Ok(Option::<Fd>::deserialize(d).unwrap_or(None))
}

#[allow(dead_code)]
#[derive(Deserialize)]
struct Tree {
    kids: Vec<Tree>,
}

#[allow(dead_code)]
#[derive(Deserialize)]
#[serde(untagged)]
enum Either {
    Number(u64),
    Text(String),
}

#[allow(dead_code)]
#[derive(Deserialize)]
enum Two {
    A,
    B,
}

/// 2^7 combinations of variants, more than a probe runs.
#[allow(dead_code)]
#[derive(Deserialize)]
struct Many(Two, Two, Two, Two, Two, Two, Two);

#[test]
fn types_that_cannot_hold_a_descriptor_are_told_apart() {
    assert!(!may_hold_fd::<String>());
    assert!(!may_hold_fd::<u64>());
    assert!(!may_hold_fd::<()>());
    assert!(!may_hold_fd::<Option<Vec<String>>>());
    assert!(!may_hold_fd::<HashMap<String, (bool, char, f64)>>());
    assert!(!may_hold_fd::<Plain>());
    assert!(!may_hold_fd::<Result<Plain, String>>());
}

#[test]
fn a_descriptor_anywhere_in_a_type_is_found() {
    assert!(may_hold_fd::<Fd>());
    assert!(may_hold_fd::<Option<Fd>>());
    assert!(may_hold_fd::<Vec<Fd>>());
    assert!(may_hold_fd::<Box<Fd>>());
    assert!(may_hold_fd::<(u8, String, Fd)>());
    assert!(may_hold_fd::<[Fd; 2]>());
    assert!(may_hold_fd::<HashMap<String, Fd>>());
    assert!(may_hold_fd::<Opened>());
    assert!(may_hold_fd::<Result<String, Opened>>());
    assert!(may_hold_fd::<Outer>());
    assert!(may_hold_fd::<Vec<Outer>>());
    // Behind code that swallows the `Fd`'s refusal.
    assert!(may_hold_fd::<Lenient>());
}

#[test]
fn a_type_that_ignores_what_it_is_given_may_hold_one() {
    // A newer daemon may add a descriptor where these ignore it: the
    // client asks for descriptors, and closes those it ignores.
    assert!(may_hold_fd::<serde::de::IgnoredAny>());
    assert!(may_hold_fd::<Tolerant>());
    assert!(may_hold_fd::<Option<Tolerant>>());
}

#[test]
fn what_the_probe_cannot_tell_may_hold_one() {
    // Shapes that come from the data.
    assert!(may_hold_fd::<crate::Value>());
    assert!(may_hold_fd::<Either>());
    // A recursive type, and too many combinations of variants.
    assert!(may_hold_fd::<Tree>());
    assert!(may_hold_fd::<Many>());
    // Two enums of two variants: four runs, told.
    assert!(!may_hold_fd::<(Two, Two)>());
}

#[test]
fn answers_are_kept_and_an_fd_deserializes_again_once_probed() {
    assert!(may_hold_fd::<Opened>());
    assert!(may_hold_fd::<Opened>());
    assert!(!PROBING.get() && !MET.get());
    // A panic inside a probe ends it too, and counts as may.
    #[allow(dead_code)]
    struct Panics;
    impl<'de> Deserialize<'de> for Panics {
        fn deserialize<D: serde::Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
            panic!("a Deserialize that panics");
        }
    }
    assert!(may_hold_fd::<Panics>());
    assert!(!PROBING.get() && !MET.get());
    assert!(!may_hold_fd::<String>());
}

#[test]
fn the_odometer_runs_every_combination_once() {
    let mut c = Choices::default();
    let mut seen = Vec::new();
    loop {
        c.next = 0;
        let a = c.pick(2);
        // The second enum is met only in the first's variant 1.
        let b = if a == 1 { Some(c.pick(3)) } else { None };
        seen.push((a, b));
        if !c.advance() {
            break;
        }
    }
    assert_eq!(seen, [(0, None), (1, Some(0)), (1, Some(1)), (1, Some(2))]);
}
