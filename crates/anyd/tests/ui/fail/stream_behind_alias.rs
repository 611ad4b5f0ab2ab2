type Events = anyd::Items<u8>;

struct Daemon;

#[anyd::api]
impl Daemon {
    fn watch(&self) -> Events {
        anyd::Items::from_iter(0..3)
    }
}

fn main() {}
