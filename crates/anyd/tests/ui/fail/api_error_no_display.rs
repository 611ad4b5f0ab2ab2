#[derive(Debug, anyd::ApiError)]
enum VpnError {
    NotConnected,
}

fn main() {}
