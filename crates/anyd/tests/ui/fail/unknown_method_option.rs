struct Daemon;

#[anyd::api]
impl Daemon {
    #[api(rename = "other")]
    fn status(&self) {}
}

fn main() {}
