#[anyd::api]
struct Daemon;

fn main() {}
