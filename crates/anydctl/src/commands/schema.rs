//! `anydctl schema diff`: whether a new contract breaks clients of an old
//! one, by `anyd::contract::diff`.

use std::io::{self, Read, Write};

use anyd::contract::{self, Document};

use super::describe::{fetch, invalid, NoDocument};
use crate::exit::{Exit, Failure};
use crate::output::contract as shown;
use crate::plan::DocSource;

/// Compares the two documents and prints each change.
pub(crate) fn diff(old: &DocSource, new: &DocSource) -> Result<Exit, Failure> {
    let (old, new) = (read(old)?, read(new)?);
    let d = contract::diff(&old, &new);
    let mut out = io::stdout().lock();
    out.write_all(shown::diff(&d).as_bytes())?;
    out.flush()?;
    Ok(if d.is_breaking() {
        Exit::Breaking
    } else {
        Exit::Success
    })
}

/// Reads a document from where the command line says.
fn read(source: &DocSource) -> Result<Document, Failure> {
    let (name, text) = match source {
        DocSource::Daemon(conn) => {
            let mut session = conn.connect()?;
            return match fetch(conn, &mut session) {
                Ok(doc) => Ok(doc),
                Err(NoDocument::NotProvided(r)) => Err(Failure::Remote(r)),
                Err(NoDocument::Invalid(why)) => Err(invalid(conn, &why)),
                Err(NoDocument::Failed(f)) => Err(f),
            };
        }
        DocSource::Stdin => {
            let mut text = String::new();
            io::stdin()
                .read_to_string(&mut text)
                .map_err(|e| unreadable("stdin", &e))?;
            ("stdin".to_owned(), text)
        }
        DocSource::File(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| unreadable(&path.display().to_string(), &e))?;
            (path.display().to_string(), text)
        }
    };
    Document::from_json(&text).map_err(|e| Failure::new(Exit::Usage, format!("{name}: {e}")))
}

fn unreadable(name: &str, e: &io::Error) -> Failure {
    Failure::new(Exit::Usage, format!("cannot read {name}: {e}"))
}
