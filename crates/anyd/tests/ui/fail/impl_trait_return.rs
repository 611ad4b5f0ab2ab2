struct Daemon;

#[anyd::api]
impl Daemon {
    fn names(&self) -> impl serde::Serialize {
        vec!["a", "b"]
    }
}

fn main() {}
