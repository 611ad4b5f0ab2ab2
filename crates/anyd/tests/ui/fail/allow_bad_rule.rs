struct Daemon;

#[anyd::api]
impl Daemon {
    #[api(allow(wheel))]
    fn unknown_rule(&self) {}

    #[api(allow(uid))]
    fn missing_value(&self) {}

    #[api(allow(root = 1))]
    fn unexpected_value(&self) {}

    #[api(allow())]
    fn empty(&self) {}

    #[api(skip, allow(root))]
    fn skipped(&self) {}
}

fn main() {}
