//! The macros' output compiles without the prelude, with the runtime crate
//! renamed, and next to local items named like the ones it uses: every path
//! it emits is absolute, and its locals cannot meet the user's names.
//!
//! A test binary of its own: `#![no_implicit_prelude]` and the renamed
//! crate hold for a whole crate, which the other tests (the `it` binary)
//! could not be written in.

#![no_implicit_prelude]

extern crate anyd as my_anyd;
extern crate std;

// Local items with the names of crates and prelude items: generated code
// must not pick them up.
#[allow(dead_code)]
mod anyd {}
#[allow(dead_code)]
mod core {}
#[allow(dead_code)]
struct Arc;
#[allow(dead_code)]
struct Result;
#[allow(dead_code)]
struct Ok;
#[allow(dead_code)]
struct Allow;
#[allow(dead_code)]
struct Items;
#[allow(dead_code)]
struct ItemIter;
#[allow(dead_code)]
struct ItemStream;

#[derive(::std::fmt::Debug, my_anyd::ApiError)]
#[api_error(crate = "my_anyd", kind = "HygieneError")]
struct Failure;

impl ::std::fmt::Display for Failure {
    fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
        f.write_str("failed")
    }
}

struct Hygienic;

#[my_anyd::api(crate = "my_anyd")]
impl Hygienic {
    /// Parameters named like the macro's own locals.
    #[api(allow(same_user, uid = 0))]
    fn echo(
        &self,
        this: ::std::string::String,
        appd: ::std::option::Option<u8>,
        peer: &my_anyd::Peer,
    ) -> ::std::string::String {
        let _ = (appd, peer);
        this
    }

    /// An async endpoint that fails.
    async fn fail(&self, self_: u8) -> ::std::result::Result<u8, Failure> {
        let _ = self_;
        ::std::result::Result::Err(Failure)
    }

    /// A fallible stream, with the runtime's `Items` by path.
    fn count(&self, n: u8) -> ::std::result::Result<my_anyd::Items<u8>, Failure> {
        match n {
            0 => ::std::result::Result::Err(Failure),
            n => ::std::result::Result::Ok(my_anyd::Items::from_iter(0..n)),
        }
    }

    /// An async stream.
    async fn repeat(&self, word: ::std::string::String) -> my_anyd::Items<::std::string::String> {
        let words: [::std::string::String; 2] = [::std::clone::Clone::clone(&word), word];
        my_anyd::Items::from_iter(words)
    }
}

/// An interface, with the same names around it.
#[my_anyd::interface(crate = "my_anyd", version = "1.0.0")]
trait HygienicInterface {
    /// Parameters named like the macro's own locals.
    #[api(allow(same_user, uid = 0))]
    fn echo(
        &self,
        this: ::std::string::String,
        generator: ::std::option::Option<u8>,
        appd: &my_anyd::Peer,
    ) -> ::std::string::String;

    /// An async endpoint that fails.
    async fn fail(&self, describe: u8) -> ::std::result::Result<u8, Failure>;

    /// A stream.
    fn count(&self, methods: u8) -> my_anyd::Items<u8>;
}

impl HygienicInterface for Hygienic {
    fn echo(
        &self,
        this: ::std::string::String,
        _: ::std::option::Option<u8>,
        _: &my_anyd::Peer,
    ) -> ::std::string::String {
        this
    }

    async fn fail(&self, _: u8) -> ::std::result::Result<u8, Failure> {
        ::std::result::Result::Err(Failure)
    }

    fn count(&self, n: u8) -> my_anyd::Items<u8> {
        my_anyd::Items::from_iter(0..n)
    }
}

#[::std::prelude::v1::test]
fn an_interface_expands_without_prelude_and_with_the_crate_renamed() {
    let contract = HygienicInterfaceContract::contract();
    ::std::assert_eq!(contract.methods.len(), 3);
    ::std::assert_eq!(HygienicInterfaceContract::VERSION, "1.0.0");
    let dir = ::tempfile::tempdir().unwrap();
    let path = dir.path().join("i.sock");
    let running = my_anyd::Appd::new()
        .mount(HygienicInterfaceService::new(Hygienic))
        .bind(path.to_str().unwrap())
        .unwrap()
        .spawn()
        .unwrap();
    let mut client = HygienicInterfaceClient::connect(running.address()).unwrap();
    let echoed = client
        .echo(
            ::std::string::ToString::to_string("hi"),
            ::std::option::Option::None,
        )
        .unwrap();
    ::std::assert_eq!(echoed, "hi");
    ::std::assert_eq!(
        client.fail(1).unwrap_err().remote().unwrap().kind,
        "HygieneError"
    );
    let counted: ::std::vec::Vec<u8> =
        ::std::iter::Iterator::collect(::std::iter::Iterator::map(client.count(3).unwrap(), |i| {
            i.unwrap()
        }));
    ::std::assert_eq!(counted, [0, 1, 2]);
    client.end_session().unwrap();
    running.shutdown().unwrap();
}

#[::std::prelude::v1::test]
fn expands_without_prelude_and_with_the_crate_renamed() {
    use ::std::result::Result::Ok as Fine;

    let dir = ::tempfile::tempdir().unwrap();
    let path = dir.path().join("h.sock");
    let running = my_anyd::Appd::new()
        .mount(Hygienic)
        .bind(path.to_str().unwrap())
        .unwrap()
        .spawn()
        .unwrap();
    let options = my_anyd::ClientOptions::new().timeout(::std::option::Option::Some(
        ::std::time::Duration::from_secs(10),
    ));
    let mut client = HygienicClient::connect_with(running.address(), options).unwrap();
    let echoed = client.echo(
        ::std::string::ToString::to_string("hi"),
        ::std::option::Option::None,
    );
    ::std::assert!(::std::matches!(echoed.as_deref(), Fine("hi")));
    let e = client.fail(1).unwrap_err();
    ::std::assert_eq!(e.remote().unwrap().kind, "HygieneError");
    let counted: ::std::vec::Vec<u8> =
        ::std::iter::Iterator::collect::<my_anyd::Result<_>>(client.count(3).unwrap()).unwrap();
    ::std::assert_eq!(counted, [0, 1, 2]);
    let mut refused = client.count(0).unwrap();
    let e = ::std::iter::Iterator::next(&mut refused)
        .unwrap()
        .unwrap_err();
    ::std::assert_eq!(e.remote().unwrap().kind, "HygieneError");
    ::std::mem::drop(refused);
    let repeated: ::std::vec::Vec<::std::string::String> =
        ::std::iter::Iterator::collect::<my_anyd::Result<_>>(
            client
                .repeat(::std::string::ToString::to_string("hi"))
                .unwrap(),
        )
        .unwrap();
    ::std::assert_eq!(repeated, ["hi", "hi"]);
    client.end_session().unwrap();
    running.shutdown().unwrap();
}
