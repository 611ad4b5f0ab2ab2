struct Daemon;

#[anyd::api]
impl Daemon {
    #[api(allow(uid = "root"))]
    fn status(&self) {}
}

fn main() {}
