mod mine {
    #[derive(serde::Serialize, serde::Deserialize)]
    pub struct Items<T>(pub Vec<T>);
}

struct Daemon;

#[anyd::api]
impl Daemon {
    fn list(&self) -> mine::Items<u8> {
        mine::Items(vec![1, 2])
    }
}

fn main() {}
