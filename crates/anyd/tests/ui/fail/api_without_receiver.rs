struct Daemon;

#[anyd::api]
impl Daemon {
    #[api(name = "make")]
    fn new() -> Self {
        Daemon
    }
}

fn main() {}
