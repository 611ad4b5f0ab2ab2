struct Daemon;

#[anyd::api]
impl Daemon {
    fn stop(self) {}
}

fn main() {}
