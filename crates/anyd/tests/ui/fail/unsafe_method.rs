struct Daemon;

#[anyd::api]
impl Daemon {
    unsafe fn poke(&self) {}
}

fn main() {}
