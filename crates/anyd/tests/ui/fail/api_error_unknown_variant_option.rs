#[derive(Debug, anyd::ApiError)]
enum VpnError {
    #[api_error(code = 3)]
    NotConnected,
}

impl std::fmt::Display for VpnError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("vpn error")
    }
}

fn main() {}
