struct Daemon;

#[anyd::api]
impl Daemon {
    fn boxed(self: Box<Self>) {}
}

fn main() {}
