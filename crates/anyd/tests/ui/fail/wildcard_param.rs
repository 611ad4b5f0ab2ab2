struct Daemon;

#[anyd::api]
impl Daemon {
    fn ignore(&self, _: String) {}
}

fn main() {}
