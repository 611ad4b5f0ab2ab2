#[derive(serde::Deserialize)]
struct Event;

struct Daemon;

#[anyd::api]
impl Daemon {
    fn watch(&self) -> Result<anyd::Items<Event>, std::io::Error> {
        Err(std::io::ErrorKind::Unsupported.into())
    }
}

fn main() {}
