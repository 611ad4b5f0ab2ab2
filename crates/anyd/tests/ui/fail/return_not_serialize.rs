struct Secret;

struct Daemon;

#[anyd::api]
impl Daemon {
    fn give(&self) -> Secret {
        Secret
    }
}

fn main() {}
