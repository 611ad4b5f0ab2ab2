//! `ANYD_MACRO_DEBUG`: prints what a macro generated to stderr at compile
//! time, laid out one statement or item per line, so that a surprising
//! expansion can be read without extra tools.

use proc_macro2::{Delimiter, Spacing, TokenStream, TokenTree};

/// `1` (or `all`) prints every expansion; a type name prints only that
/// type's.
const VAR: &str = "ANYD_MACRO_DEBUG";

pub(crate) fn maybe_print(macro_name: &str, type_name: &str, tokens: &TokenStream) {
    let Ok(filter) = std::env::var(VAR) else {
        return;
    };
    if !(filter == "1" || filter == "all" || filter == type_name) {
        return;
    }
    let mut out = String::new();
    layout(tokens.clone(), 0, &mut out);
    eprintln!("// {macro_name} on {type_name}, as expanded:\n{out}");
}

fn newline(out: &mut String, indent: usize) {
    let trimmed = out.trim_end_matches(' ').len();
    out.truncate(trimmed);
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(&"    ".repeat(indent));
}

fn layout(tokens: TokenStream, indent: usize, out: &mut String) {
    let mut after_pound = false;
    for tree in tokens {
        match &tree {
            TokenTree::Group(g) if g.delimiter() == Delimiter::Brace => {
                out.push('{');
                newline(out, indent + 1);
                layout(g.stream(), indent + 1, out);
                newline(out, indent);
                out.push('}');
                newline(out, indent);
            }
            TokenTree::Group(g) => {
                let (open, close) = match g.delimiter() {
                    Delimiter::Parenthesis => ("(", ")"),
                    Delimiter::Bracket => ("[", "]"),
                    _ => ("", ""),
                };
                out.push_str(open);
                layout(g.stream(), indent, out);
                let trimmed = out.trim_end_matches(' ').len();
                out.truncate(trimmed);
                out.push_str(close);
                if after_pound {
                    // An attribute: on its own line.
                    newline(out, indent);
                } else {
                    out.push(' ');
                }
            }
            TokenTree::Punct(p) if p.as_char() == ';' => {
                out.push(';');
                newline(out, indent);
            }
            TokenTree::Punct(p) => {
                out.push(p.as_char());
                if p.spacing() == Spacing::Alone && p.as_char() != '#' {
                    out.push(' ');
                }
            }
            other => {
                out.push_str(&other.to_string());
                out.push(' ');
            }
        }
        after_pound = matches!(&tree, TokenTree::Punct(p) if p.as_char() == '#');
    }
}
