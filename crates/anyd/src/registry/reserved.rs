//! The reserved `anyd.*` endpoints' replies (docs/PROTOCOL.md section 5):
//! the daemon's own answers about itself. Who may call them is checked
//! before (the daemon-wide rule, in `Registry::serve`), except for
//! `anyd.stats`, which has a rule of its own
//! ([`Appd::stats_allow`](crate::Appd::stats_allow)) checked here.

use anyd_wire::codec::encode_reply_ok;
use anyd_wire::message::Request;
use serde::Serialize;

use super::{not_found, Registry};
use crate::error::RemoteError;
use crate::transport::Peer;

impl Registry {
    /// Answers the reserved endpoint `request` names into `out`.
    pub(super) fn reserved(
        &self,
        request: &Request<'_>,
        peer: &Peer,
        out: &mut Vec<u8>,
    ) -> Result<(), RemoteError> {
        fn reply<T: Serialize>(
            request: &Request<'_>,
            v: &T,
            out: &mut Vec<u8>,
        ) -> Result<(), RemoteError> {
            encode_reply_ok(request.codec, v, out)
                .map_err(|e| RemoteError::new("RuntimeError", e.to_string()))
        }
        let name: &str = &request.endpoint;
        if request.positional > 0 || !request.kwargs.is_empty() {
            return Err(RemoteError::new(
                "TypeError",
                format!("{name}() takes no arguments"),
            ));
        }
        match name.strip_prefix("anyd.").unwrap_or(name) {
            "ping" => reply(request, &true, out),
            "version" => {
                #[derive(Serialize)]
                struct Version {
                    anyd: &'static str,
                    protocol: u32,
                    /// The request options this daemon knows
                    /// (docs/PROTOCOL.md section 8).
                    options: &'static [&'static str],
                    /// It reads a CANCEL behind a unary call (section 8.3).
                    cancel: bool,
                }
                let v = Version {
                    anyd: env!("CARGO_PKG_VERSION"),
                    protocol: anyd_wire::PROTOCOL_VERSION,
                    options: anyd_wire::codec::RequestOptions::KEYS,
                    cancel: true,
                };
                reply(request, &v, out)
            }
            "endpoints" => reply(request, &self.infos_for(peer), out),
            "describe" => reply(request, &self.contract.document(&self.infos_for(peer)), out),
            "stats" => {
                // Refused as a missing endpoint is, after the same
                // argument check: a caller cannot tell the two apart.
                if let Err(rule) = self.observe.admits_stats(peer) {
                    return Err(self.denied(name, rule, peer));
                }
                let rows = self.order.iter().filter_map(|n| self.endpoints.get(n));
                let stats = self.observe.reply(rows.map(|e| &e.stats));
                reply(request, &stats, out)
            }
            _ => Err(not_found(name)),
        }
    }
}
