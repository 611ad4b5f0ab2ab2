use anyd::Peer;

struct Daemon;

#[anyd::api]
impl Daemon {
    fn whoami(&self, peer: &mut Peer) -> Option<u32> {
        peer.uid()
    }
}

fn main() {}
