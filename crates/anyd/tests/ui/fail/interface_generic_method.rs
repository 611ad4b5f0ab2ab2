#[anyd::interface]
pub trait Shows {
    fn show<T: std::fmt::Debug>(&self, value: T) -> String;
}

fn main() {}
