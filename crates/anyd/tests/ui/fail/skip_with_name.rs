struct Daemon;

#[anyd::api]
impl Daemon {
    #[api(skip, name = "helper")]
    fn helper(&self) {}
}

fn main() {}
