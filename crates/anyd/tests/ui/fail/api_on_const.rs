struct Daemon;

#[anyd::api]
impl Daemon {
    #[api(name = "limit")]
    const LIMIT: u8 = 3;
}

fn main() {}
