//! Requests and replies in this codec: decoding never panics, and a decoded
//! request re-encodes to a request that decodes to the same arguments.
#![no_main]

use anyd_wire::Codec;
use libfuzzer_sys::fuzz_target;

#[path = "common/native.rs"]
mod native;

fuzz_target!(|data: &[u8]| native::check(Codec::MsgPack, data));
