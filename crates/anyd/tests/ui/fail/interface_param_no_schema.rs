use serde::{Deserialize, Serialize};

/// Serde, but no JSON Schema: an interface cannot say what it is.
#[derive(Serialize, Deserialize)]
pub struct Config {
    pub path: String,
}

#[anyd::interface]
pub trait Loads {
    fn load(&self, config: Config) -> bool;
}

fn main() {}
