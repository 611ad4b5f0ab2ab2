struct Daemon;

#[anyd::api]
impl Daemon {
    fn status(&self) -> u8 {
        1
    }

    #[api(name = "status")]
    fn status_v2(&self) -> u8 {
        2
    }
}

fn main() {}
