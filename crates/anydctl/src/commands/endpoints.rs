//! `anydctl endpoints`: what a daemon offers, from `anyd.endpoints`.

use std::io::{self, IsTerminal, Write};

use anyd::Value;

use super::call::not_endpoints;
use crate::exit::{Exit, Failure};
use crate::expected;
use crate::output::{json, table};
use crate::plan::Connection;

/// Lists the endpoints as a table, or as JSON.
pub(crate) fn run(conn: &Connection, as_json: bool) -> Result<Exit, Failure> {
    let mut session = conn.connect()?;
    // Read as a value, so that an answer of another shape is said in
    // words (`expected`), not in the codec's.
    let infos = match session.commit::<Value>("anyd.endpoints", ()) {
        Ok(answer) => expected::endpoints(&answer).map_err(|why| not_endpoints(conn, &why))?,
        Err(anyd::Error::Remote(r)) if r.kind == "NotImplementedError" => {
            return Err(Failure::new(
                Exit::Remote,
                format!(
                    "{} cannot list its endpoints: it answered anyd.endpoints with \
                     NotImplementedError: {}.\nIt is not a Rust anyd daemon (Python anyd \
                     daemons have no anyd.endpoints), or its policy does not let you call \
                     anyd.endpoints (a Rust anyd daemon answers a call it refuses as it \
                     answers a missing endpoint). Call its endpoints by name: \
                     anydctl call {} ENDPOINT [ARG]...",
                    conn.address, r.message, conn.address
                ),
            ))
        }
        Err(e) => return Err(conn.failure(e)),
    };
    drop(session);
    let mut out = io::stdout().lock();
    if as_json {
        json::write_serialize(&mut out, &infos, io::stdout().is_terminal())?;
    } else {
        out.write_all(table::endpoints(&infos).as_bytes())?;
    }
    out.flush()?;
    Ok(Exit::Success)
}
