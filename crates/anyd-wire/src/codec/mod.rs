//! The three payload codecs and how a server tells them apart.
pub mod json;
pub mod msgpack;
pub mod pickle;

/// A payload codec (docs/PROTOCOL.md section 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// MessagePack, the native default.
    MsgPack,
    /// JSON, for people and for clients in any language.
    Json,
    /// Python pickle, decoded as data only, for Python anyd programs.
    Pickle,
}
