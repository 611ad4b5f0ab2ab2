use std::cell::Cell;

struct Daemon {
    hits: Cell<u64>,
}

#[anyd::api]
impl Daemon {
    fn hit(&self) -> u64 {
        self.hits.set(self.hits.get() + 1);
        self.hits.get()
    }
}

fn main() {}
