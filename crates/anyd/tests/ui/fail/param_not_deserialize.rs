struct Secret;

struct Daemon;

#[anyd::api]
impl Daemon {
    fn take(&self, secret: Secret) {
        let _ = secret;
    }
}

fn main() {}
