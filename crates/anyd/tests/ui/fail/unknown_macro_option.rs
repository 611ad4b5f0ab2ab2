struct Daemon;

#[anyd::api(client = "Other")]
impl Daemon {
    fn ping(&self) {}
}

fn main() {}
