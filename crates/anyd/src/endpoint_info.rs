//! What `anyd.endpoints` says of each endpoint: [`EndpointInfo`] and its
//! [`ParamInfo`]s. The daemon's registry makes them, clients read them
//! (`anydctl endpoints`), so every feature set has them.

use serde::{Deserialize, Serialize};

/// One parameter of an endpoint, as introspection shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParamInfo {
    /// The parameter name, when the endpoint declares names (callers can
    /// then pass it by keyword).
    pub name: Option<String>,
    /// The Rust type, without module paths (`Option<String>`).
    #[serde(rename = "type")]
    pub ty: String,
    /// The caller may leave it out (an `Option`, say).
    pub optional: bool,
}

/// One endpoint, as `anyd.endpoints` describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointInfo {
    /// The name callers use.
    pub name: String,
    /// The wire parameters, in positional order.
    pub params: Vec<ParamInfo>,
    /// The Rust type of the result.
    pub returns: String,
    /// The documentation, possibly empty.
    pub doc: String,
    /// The endpoint streams: it sends items, `returns` is their type
    /// ([protocol section 8.1](crate::protocol#81-streams)). Absent from daemons that predate
    /// streams.
    #[serde(default)]
    pub stream: bool,
}
