//! `ANYD_MACRO_DEBUG`: prints what a macro generated to stderr at compile
//! time, laid out one statement or item per line, so that a surprising
//! expansion can be read without extra tools.

use proc_macro2::{Delimiter, Spacing, TokenStream, TokenTree};

/// `1` (or `all`) prints every expansion; a type name prints only that
/// type's.
const VAR: &str = "ANYD_MACRO_DEBUG";

pub(crate) fn maybe_print(macro_name: &str, type_name: &str, tokens: &TokenStream) {
    if wanted(std::env::var(VAR).ok().as_deref(), type_name) {
        eprintln!(
            "// {macro_name} on {type_name}, as expanded:\n{}",
            pretty(tokens)
        );
    }
}

fn wanted(filter: Option<&str>, type_name: &str) -> bool {
    matches!(filter, Some(f) if f == "1" || f == "all" || f == type_name)
}

fn pretty(tokens: &TokenStream) -> String {
    let mut out = String::new();
    layout(tokens.clone(), 0, &mut out);
    out
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter() {
        assert!(wanted(Some("1"), "Vpnmd"));
        assert!(wanted(Some("Vpnmd"), "Vpnmd"));
        assert!(!wanted(Some("Other"), "Vpnmd"));
        assert!(!wanted(None, "Vpnmd"));
    }

    #[test]
    fn one_statement_per_line() {
        let tokens = quote::quote! {
            #[doc = "x"]
            impl A { fn f(&self) -> u8 { let a = 1; a } }
        };
        assert_eq!(
            pretty(&tokens),
            "#[doc = \"x\"]\nimpl A {\n    fn f (& self) -> u8 {\n        let a = 1 ;\n        a\n    }\n}\n"
        );
    }
}
