struct Counter {
    hits: u64,
}

#[anyd::api]
impl Counter {
    fn hit(&mut self) -> u64 {
        self.hits += 1;
        self.hits
    }
}

fn main() {}
