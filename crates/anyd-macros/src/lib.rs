//! The procedural macros of anyd: [`macro@api`], [`macro@interface`] and
//! [`macro@ApiError`].
//!
//! Use them through the `anyd` crate, which re-exports them; the generated
//! code names the runtime as `::anyd` (see the `crate` option to rename
//! it). This crate is thin on purpose: `model` reads and checks the user's
//! code (an `impl` block and an interface trait alike), one generator
//! writes each generated item (`server`, `client`, `describe`,
//! `interface`, `api_error`), and every mistake becomes a compile error
//! with a span on the user's code.

// A library crate: every public item is documented (the workspace warns;
// here it is an error).
#![deny(missing_docs)]

use proc_macro::TokenStream;
use quote::quote;

mod api_error;
mod client;
mod debug;
mod describe;
mod interface;
mod model;
mod server;
mod typename;

/// Turns an `impl` block into a daemon API and typed clients.
///
/// The examples derive `Serialize` and `Deserialize` for types of their
/// own: that takes serde with its `derive` feature among the program's
/// dependencies (`serde = { version = "1", features = ["derive"] }`),
/// since anyd does not re-export serde.
///
/// ```no_run
/// use std::sync::Mutex;
///
/// use anyd::{Appd, Peer};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Debug, Clone, Serialize, Deserialize)]
/// pub struct Status {
///     pub up: bool,
///     pub config: Option<String>,
/// }
///
/// #[derive(Debug, anyd::ApiError)]
/// pub enum VpnError {
///     NotConnected,
///     #[api_error(kind = "ValueError")]
///     BadConfig(String),
/// }
///
/// impl std::fmt::Display for VpnError {
///     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
///         match self {
///             VpnError::NotConnected => write!(f, "not connected"),
///             VpnError::BadConfig(why) => write!(f, "bad config: {why}"),
///         }
///     }
/// }
///
/// #[derive(Default)]
/// pub struct Vpnmd {
///     // Shared by every connection: mutable state sits behind a lock.
///     config: Mutex<Option<String>>,
/// }
///
/// #[anyd::api]
/// impl Vpnmd {
///     /// Brings the tunnel up with the given config.
///     #[api(name = "connect")]
///     fn up(&self, config_path: String) -> Result<Status, VpnError> {
///         if config_path.is_empty() {
///             return Err(VpnError::BadConfig("empty path".into()));
///         }
///         *self.config.lock().unwrap() = Some(config_path);
///         Ok(self.status())
///     }
///
///     /// Tears the tunnel down; only root and the `vpn` group may.
///     #[api(allow(root, group = "vpn"))]
///     async fn disconnect(&self, peer: &Peer) -> Result<Status, VpnError> {
///         eprintln!("disconnect asked by uid {:?}", peer.uid());
///         self.config.lock().unwrap().take().ok_or(VpnError::NotConnected)?;
///         Ok(self.status())
///     }
///
///     /// The tunnel's state.
///     fn status(&self) -> Status {
///         let config = self.config.lock().unwrap().clone();
///         Status { up: config.is_some(), config }
///     }
/// }
///
/// fn main() -> anyd::Result<()> {
///     if std::env::args().nth(1).as_deref() == Some("status") {
///         // The typed client: one method per endpoint.
///         let mut vpn = VpnmdClient::connect("unix:/run/vpnmd.sock")?;
///         println!("{:?}", vpn.status()?);
///         return Ok(());
///     }
///     Appd::new()
///         .mount(Vpnmd::default())
///         .bind("unix:/run/vpnmd.sock")?
///         .serve()
/// }
/// ```
///
/// # Endpoints
///
/// Every method that takes `&self` (or `self: Arc<Self>`), sync or
/// `async`, becomes an endpoint named after the method. On a method:
///
/// - `#[api(name = "...")]` gives the endpoint another name (letters,
///   digits, `_` and `.`; `anyd.` is reserved);
/// - `#[api(allow(...))]` lets only some callers call it, on top of the
///   daemon-wide rule (`Appd::allow`): `root`, `same_user`, `anyone`,
///   `uid = EXPR`, `gid = EXPR`, `user = EXPR`, `group = EXPR`, any of
///   which may call (`allow(root, group = "vpn")`). Exactly
///   `Appd::restrict` with `Allow::root().or(Allow::group("vpn"))`: others
///   get the reply to an endpoint that does not exist
///   (`NotImplementedError`) and do not see it in `anyd.endpoints`; user and group names are resolved when the daemon
///   binds, and an unknown one stops it there;
/// - `#[api(skip)]` keeps it a plain method.
///
/// Functions without a receiver (constructors) stay plain functions.
/// `&mut self` is refused: one value serves every connection at once, so
/// mutable state goes in a `Mutex`, an `RwLock` or atomics inside the type.
///
/// Parameters bind by position and by keyword (the parameter's name).
/// An `Option<T>` parameter may be left out by the caller. A `&Peer` (or
/// `Peer`) parameter receives the caller's credentials and is not a wire
/// argument. Other parameters must own their values (`String`, not
/// `&str`) and be `serde::Deserialize`; the method may not be generic.
///
/// A method returns any `Serialize` value, or `Result<T, E>` where `E`
/// implements `anyd::ApiError` (derive it with [`macro@ApiError`]):
/// an `Err` reaches the caller as an error with `E`'s kind and message.
/// (A `Result` whose error is a `String` is refused here, where an
/// `Appd::api` closure would send it as a `RuntimeError`: a method's
/// error is its typed clients' too, and gets a kind of its own.)
/// A method that returns `anyd::Items<T>` streams (see [Streaming
/// methods](#streaming-methods)). Up to 10 parameters, `Peer` included.
///
/// The doc comment, the parameter names and types (as written, less module
/// paths) and the result type are what `anyd.endpoints` shows;
/// `anyd.describe`, the contract document, shows each with its JSON
/// Schema where the type has one (`schemars::JsonSchema`) and as any
/// value otherwise, and the kinds of an error type that names them
/// (`anyd::contract::ErrorKinds`, which `#[derive(ApiError)]` implements).
/// To make the API a contract of its own, in a crate a command-line tool
/// can depend on, declare it as a trait with [`macro@interface`].
///
/// # What it generates
///
/// Beside the block itself:
///
/// - `impl anyd::Api for MyDaemon`, which registers each endpoint as a
///   closure through the same path as `Appd::api` (one implementation of
///   argument binding); serve it with
///   `Appd::new().mount(MyDaemon { .. })`;
/// - `MyDaemonClient`, a blocking client: `connect(address)`,
///   `connect_with(address, options)`, `from_session`, `into_session`,
///   `session_mut` (the session's settings between calls, such as
///   `set_timeout`), `end_session`, and one method per endpoint;
/// - `MyDaemonAsyncClient`, the same on tokio (`async` methods).
///
/// Each only where the program's `anyd` has that side: the `Api` impl
/// with its `server` feature, `MyDaemonClient` with `client`,
/// `MyDaemonAsyncClient` with `async-client` (all three by default). So
/// the block builds in any feature set, and a program built with the
/// clients alone gets the clients alone. (The choice is anyd's: the
/// generated code goes through macros of anyd that keep or drop it, since
/// a `#[cfg(feature = ...)]` in it would read the program's own
/// features.)
///
/// A client method takes the endpoint's parameters, less any `Peer`, in
/// order and **by value, with the declared types** (`config_path:
/// String`), so that calls type-check against the daemon exactly; it
/// returns `anyd::Result<T>` where `T` is the `Ok` type of the method's
/// result (seen through any type named `Result`: `io::Result<T>` works; an
/// alias by another name is taken as the value type), or the items of a
/// streaming method (below). Because those names
/// belong to the clients, an endpoint method cannot be called `connect`,
/// `connect_with`, `from_session`, `into_session`, `session_mut` or
/// `end_session`; rename the method and keep the endpoint name with
/// `#[api(name = "connect")]`.
///
/// One `#[anyd::api]` block per type (it implements `Api` and names the
/// clients after the type).
///
/// # Streaming methods
///
/// A method that returns `Items<T>` (`anyd::Items`), or a `Result` of one
/// (`Result<Items<T>, E>`, `io::Result<Items<T>>`), sync or `async`, is a
/// streaming endpoint: the caller gets the items as the daemon produces
/// them, then the end. `Items` says where they come from: an iterator, an
/// async stream, a channel that a producer feeds, or a `Hub` that
/// publishes to every subscriber. An `Err` refuses the call before any
/// item; an error during the stream ends it. `anyd.endpoints` shows the
/// endpoint with `stream: true` and `T` as its result.
///
/// Its client methods give the items of type `T` instead of one value:
///
/// - the blocking client's returns `anyd::Result<anyd::ItemIter<'_, T>>`,
///   an iterator of `anyd::Result<T>`;
/// - the async client's returns `anyd::Result<anyd::ItemStream<'_, T>>`,
///   read with its `next().await` (it is also a `futures_core::Stream`).
///
/// A refused call comes as the iterator's only item, an error. The
/// iterator borrows the client; dropping it before the end cancels the
/// stream (the daemon drops its producer), and the client serves calls
/// again.
///
/// The macro tells a streaming method by its return type as written: a
/// path whose last segment is `Items` with one type argument, itself or as
/// the first argument of a type named `Result`. So `Items<T>` behind an
/// alias of another name is a compile error (its clients would call it as
/// a plain endpoint), and so is a type of the user's named `Items` (import
/// it under another name to return it as one value).
///
/// ```no_run
/// use anyd::{Hub, Items};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Debug, Clone, Serialize, Deserialize)]
/// pub enum Event {
///     Up { tunnel: String },
///     Down { tunnel: String },
/// }
///
/// pub struct Tunnels {
///     events: Hub<Event>,
/// }
///
/// #[anyd::api]
/// impl Tunnels {
///     /// Brings `tunnel` up, and tells the watchers.
///     fn up(&self, tunnel: String) {
///         self.events.publish(Event::Up { tunnel });
///     }
///
///     /// Every change from now on.
///     fn watch(&self) -> Items<Event> {
///         self.events.subscribe()
///     }
///
///     /// The lines of a tunnel's log, read as the client takes them; a
///     /// log that cannot be opened refuses the call.
///     async fn log(&self, tunnel: String) -> std::io::Result<Items<String>> {
///         use std::io::BufRead;
///         let file = std::fs::File::open(format!("/var/log/tunnels/{tunnel}.log"))?;
///         Ok(Items::try_from_iter(std::io::BufReader::new(file).lines()))
///     }
/// }
///
/// fn main() -> anyd::Result<()> {
///     if std::env::args().nth(1).as_deref() == Some("serve") {
///         let tunnels = Tunnels { events: Hub::new(64) };
///         return anyd::Appd::new()
///             .mount(tunnels)
///             .bind("unix:/run/tunnels.sock")?
///             .serve();
///     }
///     let mut tunnels = TunnelsClient::connect("unix:/run/tunnels.sock")?;
///     for line in tunnels.log("wg0".into())? {
///         println!("{}", line?);
///     }
///     // The first change, then the stream is cancelled as the
///     // iterator is dropped.
///     if let Some(event) = tunnels.watch()?.next() {
///         println!("{:?}", event?);
///     }
///     tunnels.up("wg0".into())?;
///     tunnels.end_session()
/// }
/// ```
///
/// # Options
///
/// - `#[anyd::api(crate = "my_anyd")]`: where the runtime crate is, when
///   it is renamed or re-exported (a bare name is taken as a crate,
///   `::my_anyd`);
/// - `#[anyd::api(vis = "pub(crate)")]`: the visibility of the clients
///   (default `pub`).
///
/// # Seeing the expansion
///
/// With `ANYD_MACRO_DEBUG=1` in the environment of the compiler, the
/// generated code is printed to stderr (`ANYD_MACRO_DEBUG=MyDaemon` for
/// one type only). Cargo does not rebuild when only the variable changes:
/// touch the source file.
#[proc_macro_attribute]
pub fn api(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand_api(attr.into(), item.into()).into()
}

fn expand_api(
    attr: proc_macro2::TokenStream,
    item: proc_macro2::TokenStream,
) -> proc_macro2::TokenStream {
    let options = match model::Options::parse(attr, syn::parse_quote!(pub), false) {
        Ok(o) => o,
        Err(e) => {
            let e = e.to_compile_error();
            return quote!(#e #item);
        }
    };
    let item: syn::ItemImpl = match syn::parse2(item.clone()) {
        Ok(i) => i,
        Err(_) => {
            let e = syn::Error::new(
                proc_macro2::Span::call_site(),
                "#[anyd::api] goes on an `impl MyDaemon { .. }` block",
            )
            .to_compile_error();
            return quote!(#e #item);
        }
    };
    let (block, errors) = model::ApiBlock::parse(item);
    let cleaned = &block.item;
    if let Err(e) = errors.into_result() {
        // The block without its `#[api]` attributes still compiles, so the
        // errors above are the only ones.
        let e = e.to_compile_error();
        return quote!(#e #cleaned);
    }
    let api = server::api_impl(&block, &options.krate);
    let source = client::Source {
        name: &block.name,
        endpoints: &block.endpoints,
        origin: "#[anyd::api]",
    };
    let blocking = client::blocking_client(&source, &options);
    let nonblocking = client::async_client(&source, &options);
    // Each side only where the user's anyd has it: a `#[cfg]` here would
    // read the user's crate's features, so anyd's own macros decide.
    let krate = &options.krate;
    let out = quote! {
        #cleaned
        #krate::__private::server_side! { #api }
        #krate::__private::client_side! { #blocking }
        #krate::__private::async_client_side! { #nonblocking }
    };
    debug::maybe_print("#[anyd::api]", &block.name.to_string(), &out);
    out
}

/// Turns a trait into an interface: the contract between a daemon and its
/// clients, in a crate of its own that a command-line tool depends on
/// without the daemon's code.
///
/// ```no_run
/// // The interface crate (`vpn-api`, say): types, errors, the trait.
/// use anyd::{Items, Peer};
/// use anyd::schemars::JsonSchema;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
/// #[schemars(crate = "anyd::schemars")]
/// pub struct Status {
///     pub up: bool,
/// }
///
/// /// What a tunnel's failures are.
/// #[derive(Debug, anyd::ApiError)]
/// pub enum VpnError {
///     /// The tunnel is not up.
///     NotConnected,
/// }
/// # impl std::fmt::Display for VpnError {
/// #     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { f.write_str("not connected") }
/// # }
///
/// /// A VPN daemon's API.
/// #[anyd::interface(name = "vpn")]
/// pub trait Vpn {
///     /// The tunnel's state.
///     fn status(&self) -> Status;
///
///     /// Tears the tunnel down; root and the `vpn` group only.
///     #[api(allow(root, group = "vpn"))]
///     async fn disconnect(&self, peer: &Peer) -> Result<Status, VpnError>;
///
///     /// Every change from now on.
///     fn watch(&self) -> Items<Status>;
/// }
///
/// // The daemon implements the trait on its state, and mounts it.
/// struct Daemon;
///
/// impl Vpn for Daemon {
///     fn status(&self) -> Status {
///         Status { up: false }
///     }
///     async fn disconnect(&self, _: &Peer) -> Result<Status, VpnError> {
///         Err(VpnError::NotConnected)
///     }
///     fn watch(&self) -> Items<Status> {
///         Items::from_iter([self.status()])
///     }
/// }
///
/// fn main() -> anyd::Result<()> {
///     // The contract, at build time: no daemon runs.
///     let contract = VpnContract::contract();
///     assert_eq!(contract.info.title, "vpn");
///     assert_eq!(contract.methods[1].errors.as_ref().unwrap()[0].kind, "VpnError");
///
///     if std::env::args().nth(1).as_deref() == Some("serve") {
///         return anyd::Appd::new()
///             .mount(VpnService::new(Daemon))
///             .bind("unix:/run/vpn.sock")?
///             .serve();
///     }
///     // The CLI: the typed client, whichever daemon serves `Vpn`.
///     let mut vpn = VpnClient::connect("unix:/run/vpn.sock")?;
///     println!("{:?}", vpn.status()?);
///     vpn.end_session()
/// }
/// ```
///
/// Each method is an endpoint, read as for [`macro@api`]: `&self` (or
/// `self: Arc<Self>`), sync or `async`, parameters by position or
/// keyword, `Option` ones optional, a `&Peer` that is the caller,
/// `Result<T, E>` with `E` an `anyd::ApiError`, `Items<T>` to stream,
/// `anyd::Fd` in parameters and results; `#[api(name = "...")]`,
/// `#[api(allow(...))]` and `#[api(skip)]` as there; the doc comment is
/// the endpoint's. Unlike an `impl` block's, an interface's types are
/// its contract, so each must say what it is:
///
/// - every parameter, result and item type has a JSON Schema
///   (`schemars::JsonSchema`, re-exported as `anyd::schemars`; derive it
///   with `#[schemars(crate = "anyd::schemars")]`, or depend on
///   `schemars` 1 and derive it plainly);
/// - the error type of a `Result` names its kinds
///   (`anyd::contract::ErrorKinds`, which `#[derive(ApiError)]`
///   implements; `std::io::Error` names Python's `OSError` family,
///   `anyd::RemoteError` any kind);
/// - no method is generic, takes `self` by value or names `Self` in its
///   types, and no endpoint name starts with `anyd.`: each is a compile
///   error naming the method.
///
/// # What it generates
///
/// Beside the trait (unchanged but for the `#[api]` attributes):
///
/// - `VpnContract`: `NAME`, `VERSION` (the crate's, unless
///   `version = "..."` says), `info()` and `contract()`, the
///   [contract document](../anyd/contract/struct.Document.html) built
///   from the types alone, which a test can write to a file and compare
///   with `anyd::contract::diff`;
/// - `VpnClient` and `VpnAsyncClient`, the typed clients, as for an
///   `impl` block: the same whichever daemon serves the interface;
/// - `VpnService<T>`, which serves any `T: Vpn` (`Send + Sync +
///   'static`): `Appd::new().mount(VpnService::new(value))`, or
///   `VpnService::from_arc(arc)` to keep a handle on the value. Its
///   endpoints describe themselves at `anyd.describe` exactly as
///   `contract()` does.
///
/// The clients and the contract use the client side of anyd only; the
/// trait and the service, its daemon side.
///
/// # Options
///
/// `name = "..."` (the interface's name in its contract; default the
/// trait's), `version = "..."`, and `crate`, `vis` as for [`macro@api`]
/// (the generated items have the trait's visibility by default).
/// `ANYD_MACRO_DEBUG` prints the expansion, as for [`macro@api`].
#[proc_macro_attribute]
pub fn interface(attr: TokenStream, item: TokenStream) -> TokenStream {
    interface::expand(attr.into(), item.into()).into()
}

/// Implements `anyd::ApiError` for an error type, so that a method of an
/// [`macro@api`] block (or an `Appd::api` closure) can return
/// `Result<T, ThisType>` and the caller gets the error with a kind.
///
/// The kind is the type's name unless `#[api_error(kind = "...")]` on the
/// type or on a variant says otherwise; the message is the `Display` text
/// (which the type must implement). A Python anyd client raises a kind
/// that names a Python builtin exception (`ValueError`,
/// `PermissionError`, ...) as that exception, and any other kind, such as
/// the type's own name, as `RuntimeError("<kind>: <message>")`.
///
/// ```
/// use anyd::ApiError as _; // the trait, for into_remote()
///
/// #[derive(Debug, anyd::ApiError)]
/// enum VpnError {
///     NotConnected,
///     #[api_error(kind = "PermissionError")]
///     NotAllowed { uid: u32 },
/// }
///
/// impl std::fmt::Display for VpnError {
///     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
///         match self {
///             VpnError::NotConnected => f.write_str("not connected"),
///             VpnError::NotAllowed { uid } => write!(f, "uid {uid} may not do that"),
///         }
///     }
/// }
///
/// let e = VpnError::NotConnected.into_remote();
/// assert_eq!((e.kind.as_str(), e.message.as_str()), ("VpnError", "not connected"));
/// let e = VpnError::NotAllowed { uid: 1000 }.into_remote();
/// assert_eq!(e.kind, "PermissionError");
/// ```
///
/// On the type, `#[api_error(crate = "my_anyd")]` names a renamed runtime
/// crate, as for [`macro@api`].
#[proc_macro_derive(ApiError, attributes(api_error))]
pub fn derive_api_error(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as syn::DeriveInput);
    let name = input.ident.to_string();
    let out = api_error::derive(input).unwrap_or_else(syn::Error::into_compile_error);
    debug::maybe_print("#[derive(ApiError)]", &name, &out);
    out.into()
}

#[cfg(test)]
mod tests;
