//! A written Rust type as introspection shows it: `Option<String>`, not the
//! `Option < String >` that token streams print.

use proc_macro2::{Delimiter, Spacing, TokenStream, TokenTree};
use quote::ToTokens;

/// The type as text, spaced as rustfmt would (`HashMap<String, f64>`,
/// `&'static str`, `fn(u8) -> u8`).
pub(crate) fn type_name(ty: &syn::Type) -> String {
    let mut out = String::new();
    write_tokens(ty.to_token_stream(), &mut out);
    out
}

fn ends_with_word(out: &str) -> bool {
    out.ends_with(|c: char| c.is_alphanumeric() || c == '_')
}

fn write_tokens(tokens: TokenStream, out: &mut String) {
    let mut joint_minus = false;
    for tree in tokens {
        match tree {
            TokenTree::Ident(i) => {
                if ends_with_word(out) {
                    out.push(' ');
                }
                out.push_str(&i.to_string());
            }
            TokenTree::Literal(l) => {
                if ends_with_word(out) {
                    out.push(' ');
                }
                out.push_str(&l.to_string());
            }
            TokenTree::Punct(p) => {
                let c = p.as_char();
                match c {
                    ',' | ';' => out.push_str(&format!("{c} ")),
                    '+' | '=' => {
                        let trimmed = out.trim_end().len();
                        out.truncate(trimmed);
                        out.push_str(&format!(" {c} "));
                    }
                    '-' if p.spacing() == Spacing::Joint => {
                        joint_minus = true;
                        continue;
                    }
                    '>' if joint_minus => out.push_str(" -> "),
                    '\'' if ends_with_word(out) => out.push_str(" '"),
                    _ => out.push(c),
                }
            }
            TokenTree::Group(g) => {
                let (open, close) = match g.delimiter() {
                    Delimiter::Parenthesis => ("(", ")"),
                    Delimiter::Bracket => ("[", "]"),
                    Delimiter::Brace => ("{", "}"),
                    Delimiter::None => ("", ""),
                };
                if g.delimiter() == Delimiter::None && ends_with_word(out) {
                    out.push(' ');
                }
                out.push_str(open);
                write_tokens(g.stream(), out);
                let trimmed = out.trim_end().len();
                out.truncate(trimmed);
                out.push_str(close);
            }
        }
        joint_minus = false;
    }
    let trimmed = out.trim_end().len();
    out.truncate(trimmed);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> String {
        type_name(&syn::parse_str(s).unwrap())
    }

    #[test]
    fn spaced_like_rustfmt() {
        for s in [
            "String",
            "Option<String>",
            "std::collections::HashMap<String, f64>",
            "Vec<Option<(u8, String)>>",
            "(u8,)",
            "()",
            "[u8; 4]",
            "&'static str",
            "&mut T",
            "*const u8",
            "Box<dyn Fn(u8) -> u8 + Send>",
            "<T as Trait>::Out",
            "Result<(), E>",
        ] {
            assert_eq!(name(s), s);
        }
    }
}
