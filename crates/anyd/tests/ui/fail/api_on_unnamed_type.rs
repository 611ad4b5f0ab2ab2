#[anyd::api]
impl (u8, u8) {
    fn first(&self) -> u8 {
        self.0
    }
}

fn main() {}
