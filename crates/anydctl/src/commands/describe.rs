//! `anydctl describe`: a daemon's contract document, from `anyd.describe`;
//! and reading one, which `call` (to check arguments) and `schema diff`
//! share.

use std::io::{self, IsTerminal, Write};

use anyd::contract::Document;
use anyd::{ClientSession, RemoteError};

use crate::exit::{Exit, Failure};
use crate::output::{contract, json};
use crate::plan::Connection;

/// Why no document came.
pub(crate) enum NoDocument {
    /// The daemon has none for this caller: it answered with an error
    /// (NotImplementedError, from daemons that predate `anyd.describe`
    /// and from Python anyd daemons).
    NotProvided(RemoteError),
    /// What it answered is not a contract document: why.
    Invalid(String),
    /// The call failed.
    Failed(Failure),
}

/// Asks the daemon for its contract.
pub(crate) fn fetch(
    conn: &Connection,
    session: &mut ClientSession,
) -> Result<Document, NoDocument> {
    match session.commit::<serde_json::Value>("anyd.describe", ()) {
        Ok(answer) => Document::from_value(answer).map_err(|e| NoDocument::Invalid(e.to_string())),
        Err(anyd::Error::Remote(r)) => Err(NoDocument::NotProvided(r)),
        Err(e) => Err(NoDocument::Failed(conn.failure(e))),
    }
}

/// The failure for an answer that is not a contract document.
pub(crate) fn invalid(conn: &Connection, why: &str) -> Failure {
    Failure::new(
        Exit::Other,
        format!(
            "{} answered anyd.describe with what is not a contract document: {why}",
            conn.address
        ),
    )
}

/// Shows the document, as text or as itself.
pub(crate) fn run(conn: &Connection, as_json: bool) -> Result<Exit, Failure> {
    let mut session = conn.connect()?;
    let doc = match fetch(conn, &mut session) {
        Ok(doc) => doc,
        Err(NoDocument::NotProvided(r)) if r.kind == "NotImplementedError" => {
            return Err(Failure::new(
                Exit::Remote,
                format!(
                    "{} has no contract to show: it answered anyd.describe with \
                     NotImplementedError: {}.\nIt predates anyd.describe, or is not a Rust \
                     anyd daemon; `anydctl endpoints {}` may still list its endpoints.",
                    conn.address, r.message, conn.address
                ),
            ))
        }
        Err(NoDocument::NotProvided(r)) => return Err(Failure::Remote(r)),
        Err(NoDocument::Invalid(why)) => return Err(invalid(conn, &why)),
        Err(NoDocument::Failed(f)) => return Err(f),
    };
    drop(session);
    let mut out = io::stdout().lock();
    if as_json {
        json::write_serialize(&mut out, &doc, io::stdout().is_terminal())?;
    } else {
        out.write_all(contract::text(&doc).as_bytes())?;
    }
    out.flush()?;
    Ok(Exit::Success)
}
