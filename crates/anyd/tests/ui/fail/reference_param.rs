struct Daemon;

#[anyd::api]
impl Daemon {
    fn greet(&self, name: &str) -> String {
        format!("hello, {name}")
    }
}

fn main() {}
