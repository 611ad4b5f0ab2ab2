#[derive(Debug)]
struct Oops;

struct Daemon;

#[anyd::api]
impl Daemon {
    fn fail(&self) -> Result<u8, Oops> {
        Err(Oops)
    }
}

fn main() {}
