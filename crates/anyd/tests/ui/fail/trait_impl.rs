trait Ping {
    fn ping(&self);
}

struct Daemon;

#[anyd::api]
impl Ping for Daemon {
    fn ping(&self) {}
}

fn main() {}
