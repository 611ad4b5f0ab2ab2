//! A daemon program that never calls its own API gets no warning about
//! the unused clients, even with private types.
#![deny(warnings)]

#[derive(serde::Serialize, serde::Deserialize)]
struct Reply {
    n: u8,
}

struct Daemon;

#[anyd::api]
impl Daemon {
    fn get(&self) -> Reply {
        Reply { n: 1 }
    }
}

fn main() {
    let _appd = anyd::Appd::new().mount(Daemon);
}
