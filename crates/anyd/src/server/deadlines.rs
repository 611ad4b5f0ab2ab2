//! How long calls may take: the daemon's and the endpoints' own bounds,
//! which a call's deadline never passes, whatever its caller allows
//! (docs/PROTOCOL.md section 8.3).

use std::time::Duration;

use super::Appd;

impl Appd {
    /// Bounds every call: one that is not done within `timeout` of the
    /// daemon reading it, or within its caller's `timeout_ms` if that is
    /// sooner, is due. An async handler is dropped at the deadline and
    /// its caller gets a `TimeoutError`; a blocking handler sees the
    /// deadline through its [`Context`](crate::Context) and is answered
    /// when it returns. Default: no bound of the daemon's, so a call that
    /// sends no timeout has none (a daemon cannot know how long its
    /// callers will wait, and stopping privileged work half way is worse
    /// than letting it finish). An endpoint's own bound
    /// ([`timeout`](Self::timeout)) applies with this one: the earlier
    /// wins.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// async fn slow() -> u32 {
    ///     tokio::time::sleep(Duration::from_secs(3600)).await;
    ///     1
    /// }
    ///
    /// let app = anyd::Appd::new()
    ///     .call_timeout(Duration::from_secs(30))
    ///     .api("slow()", slow)
    ///     .timeout(Duration::from_secs(5));
    /// # drop(app);
    /// ```
    pub fn call_timeout(mut self, timeout: Duration) -> Self {
        self.registry.call_timeout = Some(timeout);
        self
    }

    /// Bounds the calls of the endpoint registered last (see
    /// [`call_timeout`](Self::call_timeout)).
    ///
    /// # Panics
    ///
    /// If no endpoint was registered yet.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.registry.timeout_last(timeout);
        self
    }

    /// Bounds the calls of the endpoint `name`, as
    /// [`timeout`](Self::timeout) does the one registered last: for
    /// endpoints [mounted](Appd::mount) from an interface.
    ///
    /// # Panics
    ///
    /// If no endpoint of that name is registered yet.
    pub fn endpoint_timeout(mut self, name: &str, timeout: Duration) -> Self {
        self.registry.timeout_named(name, timeout);
        self
    }
}
