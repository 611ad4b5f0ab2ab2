struct Daemon;

#[anyd::api]
impl Daemon {
    #[api(name = "anyd.ping")]
    fn ping(&self) -> bool {
        true
    }
}

fn main() {}
