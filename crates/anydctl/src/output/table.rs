//! The endpoint table of `anydctl endpoints`. Everything in it comes from
//! the daemon, so every cell is escaped (`output::text`), and all but the
//! doc kept on one line.

use anyd::{EndpointInfo, ParamInfo};

use super::text::{escape, escape_line};

/// One parameter as `name: type`, `name?: type` when it may be left out,
/// and `#n: type` when the endpoint does not name its parameters (they can
/// then only be passed by position).
fn param(index: usize, p: &ParamInfo) -> String {
    let name = match &p.name {
        Some(n) => escape_line(n).into_owned(),
        None => format!("#{}", index + 1),
    };
    let mark = if p.optional { "?" } else { "" };
    format!("{name}{mark}: {}", escape_line(&p.ty))
}

/// What an endpoint returns: its result's type, or `stream of T` for a
/// stream of items of type T (in words, for people; `--json` has a
/// `stream` field for scripts).
fn returns(e: &EndpointInfo) -> String {
    let ty = escape_line(&e.returns);
    if e.stream {
        format!("stream of {ty}")
    } else {
        ty.into_owned()
    }
}

/// The endpoints as aligned columns: ENDPOINT, PARAMETERS, RETURNS, DOC.
/// A doc of several lines continues on the lines below, in its column.
pub(crate) fn endpoints(infos: &[EndpointInfo]) -> String {
    let rows: Vec<[String; 3]> = infos
        .iter()
        .map(|e| {
            let params: Vec<String> = e
                .params
                .iter()
                .enumerate()
                .map(|(i, p)| param(i, p))
                .collect();
            let params = if params.is_empty() {
                "-".to_owned()
            } else {
                params.join(", ")
            };
            [escape_line(&e.name).into_owned(), params, returns(e)]
        })
        .collect();
    let header = ["ENDPOINT", "PARAMETERS", "RETURNS"];
    let mut widths = header.map(|h| h.chars().count());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: [&str; 3], doc: &str| {
        let mut text = String::new();
        for (cell, w) in cells.iter().zip(widths) {
            let pad = w - cell.chars().count();
            text.push_str(cell);
            text.push_str(&" ".repeat(pad + 2));
        }
        text.push_str(doc);
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(header, "DOC");
    for (row, info) in rows.iter().zip(infos) {
        let mut doc = info.doc.trim().lines().map(|l| escape(l.trim_end()));
        line([&row[0], &row[1], &row[2]], &doc.next().unwrap_or_default());
        for more in doc {
            line(["", "", ""], &more);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(name: Option<&str>, ty: &str, optional: bool) -> ParamInfo {
        ParamInfo {
            name: name.map(str::to_owned),
            ty: ty.to_owned(),
            optional,
        }
    }

    #[test]
    fn a_readable_table() {
        let infos = vec![
            EndpointInfo {
                name: "echo".into(),
                params: vec![p(Some("arg"), "Value", false)],
                returns: "Value".into(),
                doc: "Returns its argument.".into(),
                stream: false,
            },
            EndpointInfo {
                name: "greet".into(),
                params: vec![
                    p(Some("name"), "String", false),
                    p(Some("greeting"), "Option<String>", true),
                ],
                returns: "String".into(),
                doc: "Greets.\nPolitely.".into(),
                stream: false,
            },
            EndpointInfo {
                name: "mul".into(),
                params: vec![p(None, "u8", false), p(None, "u8", false)],
                returns: "u16".into(),
                doc: String::new(),
                stream: false,
            },
            EndpointInfo {
                name: "status".into(),
                params: vec![],
                returns: "String".into(),
                doc: String::new(),
                stream: false,
            },
            EndpointInfo {
                name: "watch".into(),
                params: vec![],
                returns: "Event".into(),
                doc: "Every change, as it happens.".into(),
                stream: true,
            },
        ];
        let expected = "\
ENDPOINT  PARAMETERS                               RETURNS          DOC
echo      arg: Value                               Value            Returns its argument.
greet     name: String, greeting?: Option<String>  String           Greets.
                                                                    Politely.
mul       #1: u8, #2: u8                           u16
status    -                                        String
watch     -                                        stream of Event  Every change, as it happens.
";
        assert_eq!(endpoints(&infos), expected);
    }
}
