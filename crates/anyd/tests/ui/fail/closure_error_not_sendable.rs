// A closure returning a `Result` whose error is neither an
// `anyd::ApiError` nor serializable: nothing could reach the caller, and
// the message says what an endpoint may return.
#[derive(Debug)]
struct Oops;

fn main() {
    let _ = anyd::Appd::new().api("get()", || -> Result<u8, Oops> { Err(Oops) });
}
