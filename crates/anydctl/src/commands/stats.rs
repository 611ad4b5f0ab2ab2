//! `anydctl stats`: a daemon's counts per endpoint, from `anyd.stats`.

use std::io::{self, IsTerminal, Write};

use crate::exit::{Exit, Failure};
use crate::output::{json, stats};
use crate::plan::Connection;

/// Shows the counts as a table, or the reply as it is.
pub(crate) fn run(conn: &Connection, as_json: bool) -> Result<Exit, Failure> {
    let mut session = conn.connect()?;
    let answer = match session.commit::<serde_json::Value>("anyd.stats", ()) {
        Ok(answer) => answer,
        Err(anyd::Error::Remote(r)) if r.kind == "NotImplementedError" => {
            return Err(Failure::new(
                Exit::Remote,
                format!(
                    "{} shows you no stats: it answered anyd.stats with \
                     NotImplementedError: {}.\nOnly root and the daemon's own user may \
                     read them unless the daemon admits more (Appd::stats_allow); a \
                     daemon that predates anyd.stats, or a Python anyd daemon, has none.",
                    conn.address, r.message
                ),
            ))
        }
        Err(e) => return Err(conn.failure(e)),
    };
    drop(session);
    let mut out = io::stdout().lock();
    if as_json {
        json::write_serialize(&mut out, &answer, io::stdout().is_terminal())?;
    } else {
        let table = stats::table(&answer).map_err(|why| {
            Failure::new(
                Exit::Other,
                format!(
                    "{} answered anyd.stats with what anydctl cannot read: {why}",
                    conn.address
                ),
            )
        })?;
        out.write_all(table.as_bytes())?;
    }
    out.flush()?;
    Ok(Exit::Success)
}
