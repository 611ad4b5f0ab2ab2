#[anyd::interface]
pub trait Stops {
    fn stop(self);
}

fn main() {}
