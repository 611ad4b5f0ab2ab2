//! A block with no endpoint yet still makes an API and clients.
#![deny(warnings)]

struct Daemon;

#[anyd::api]
impl Daemon {
    fn new() -> Self {
        Daemon
    }
}

fn main() {
    let _appd = anyd::Appd::new().mount(Daemon::new());
    let _from_session = DaemonClient::from_session;
}
