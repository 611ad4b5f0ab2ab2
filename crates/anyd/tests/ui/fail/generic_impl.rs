struct Daemon<T>(T);

#[anyd::api]
impl<T: Send + Sync + 'static> Daemon<T> {
    fn ping(&self) {}
}

fn main() {}
