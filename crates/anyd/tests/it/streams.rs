//! Streaming endpoints end to end (docs/PROTOCOL.md section 8.1): items
//! through both clients, the end and errors, cancel, and what a stream
//! leaves behind.

use std::time::Duration;

use anyd::{Appd, ClientOptions, Codec, Error, Hub, Items};
use anyd_testkit::raw::start;

const PATIENCE: Duration = Duration::from_secs(20);

fn counting() -> Appd {
    Appd::new()
        .api("count(n)", |n: u64| Items::from_iter(0..n))
        .api("echo(a)", |a: u64| a)
}

#[test]
fn a_stream_of_items_then_the_session_goes_on() {
    let (d, _dir) = start(counting());
    for codec in [Codec::MsgPack, Codec::Json] {
        let mut s = ClientOptions::new()
            .codec(codec)
            .connect(d.address())
            .unwrap();
        let items: Vec<u64> = s
            .stream::<u64>("count", (100_000,))
            .unwrap()
            .collect::<anyd::Result<_>>()
            .unwrap();
        assert_eq!(items, (0..100_000).collect::<Vec<_>>());
        assert_eq!(s.commit::<u64>("echo", (7,)).unwrap(), 7);
    }
}

#[test]
fn dropping_the_iterator_cancels_and_the_session_goes_on() {
    let (d, _dir) = start(counting());
    let mut s = ClientSession_connect(&d);
    let mut items = s.stream::<u64>("count", (u64::MAX,)).unwrap();
    assert_eq!(items.next().unwrap().unwrap(), 0);
    assert_eq!(items.next().unwrap().unwrap(), 1);
    drop(items);
    assert_eq!(s.commit::<u64>("echo", (7,)).unwrap(), 7);
}

#[allow(non_snake_case)]
fn ClientSession_connect(d: &anyd::Running) -> anyd::ClientSession {
    ClientOptions::new()
        .timeout(Some(PATIENCE))
        .connect(d.address())
        .unwrap()
}

#[test]
fn a_hub_reaches_its_subscribers() {
    let hub: Hub<u32> = Hub::new(16);
    let h = hub.clone();
    let (d, _dir) = start(Appd::new().api("watch()", move || h.subscribe()));
    let mut s = ClientSession_connect(&d);
    let mut events = s.stream::<u32>("watch", ()).unwrap();
    // Subscribed once the hub counts it.
    anyd_testkit::process::wait_until("a subscriber", || hub.subscribers() == 1);
    hub.publish(5);
    hub.publish(6);
    assert_eq!(events.next().unwrap().unwrap(), 5);
    assert_eq!(events.next().unwrap().unwrap(), 6);
    drop(events);
    anyd_testkit::process::wait_until("no subscriber", || hub.subscribers() == 0);
}

#[test]
fn async_streams_through_the_async_client() {
    let (d, _dir) = start(counting());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut s = anyd::AsyncClientSession::connect(d.address())
            .await
            .unwrap();
        let mut items = s.stream::<u64>("count", (10,)).await.unwrap();
        let mut got = Vec::new();
        while let Some(i) = items.next().await {
            got.push(i.unwrap());
        }
        assert_eq!(got, (0..10).collect::<Vec<_>>());
        let mut items = s.stream::<u64>("count", (u64::MAX,)).await.unwrap();
        assert_eq!(items.next().await.unwrap().unwrap(), 0);
        // Dropped before the end, which is what cancels: the session
        // finishes the cancel at its next use, so there is no Drop to run.
        #[allow(clippy::drop_non_drop)]
        drop(items);
        assert_eq!(s.commit::<u64>("echo", (7,)).await.unwrap(), 7);
    });
}

#[test]
fn a_unary_call_of_a_stream_is_a_clear_error() {
    let (d, _dir) = start(counting());
    let mut s = ClientSession_connect(&d);
    let e = s.commit::<u64>("count", (3,)).unwrap_err();
    assert!(
        matches!(&e, Error::Remote(r) if r.kind == "TypeError" && r.message.contains("stream")),
        "{e}"
    );
    let mut items = s.stream::<u64>("echo", (3,)).unwrap();
    let e = items.next().unwrap().unwrap_err();
    assert!(
        matches!(&e, Error::Remote(r) if r.kind == "TypeError"),
        "{e}"
    );
    assert!(items.next().is_none());
    drop(items);
    assert_eq!(s.commit::<u64>("echo", (7,)).unwrap(), 7);
}
