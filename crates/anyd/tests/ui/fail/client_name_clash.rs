struct Vpnmd;

#[anyd::api]
impl Vpnmd {
    /// The endpoint would be fine, but `VpnmdClient::connect` is taken.
    fn connect(&self, config_path: String) -> String {
        config_path
    }
}

fn main() {}
