//! `crate` and `vis`: a re-exported runtime and clients private to the
//! crate.
#![deny(warnings)]

mod runtime {
    pub use anyd as reexported;
}

mod daemon {
    pub(crate) struct Daemon;

    #[anyd::api(crate = "crate::runtime::reexported", vis = "pub(crate)")]
    impl Daemon {
        fn ping(&self) -> bool {
            true
        }
    }
}

fn main() {
    let _appd = anyd::Appd::new().mount(daemon::Daemon);
    let _from_session = daemon::DaemonClient::from_session;
}
