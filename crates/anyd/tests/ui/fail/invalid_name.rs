struct Daemon;

#[anyd::api]
impl Daemon {
    #[api(name = "get status")]
    fn status(&self) -> bool {
        true
    }
}

fn main() {}
