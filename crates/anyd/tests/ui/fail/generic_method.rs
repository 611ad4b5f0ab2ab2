struct Daemon;

#[anyd::api]
impl Daemon {
    fn show<T: std::fmt::Debug>(&self, value: T) -> String {
        format!("{value:?}")
    }
}

fn main() {}
