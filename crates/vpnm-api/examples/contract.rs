//! Prints vpnmd's contract document, built from the interface alone:
//! `cargo run -p vpnm-api --example contract > vpnmd.contract.json`.

fn main() {
    print!("{}", vpnm_api::VpnmContract::contract().to_json_pretty());
}
