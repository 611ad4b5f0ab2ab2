struct Daemon;

#[anyd::api]
impl Daemon {
    fn greet(&self, name: impl Into<String>) -> String {
        name.into()
    }
}

fn main() {}
