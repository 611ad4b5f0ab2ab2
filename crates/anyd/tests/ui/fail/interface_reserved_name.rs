#[anyd::interface]
pub trait Pings {
    #[api(name = "anyd.ping")]
    fn ping(&self) -> bool;
}

fn main() {}
