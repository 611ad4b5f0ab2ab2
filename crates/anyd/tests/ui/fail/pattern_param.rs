struct Daemon;

#[anyd::api]
impl Daemon {
    fn add(&self, (a, b): (i64, i64)) -> i64 {
        a + b
    }
}

fn main() {}
