//! `Appd::bind`: from a builder to a listening [`Server`]: the user to
//! serve as, the pid file, the socket (passed by a service manager, or
//! bound), the connection caps and the memory budget, then dropping
//! privileges.

use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Condvar, Mutex};

use crate::address::ToAddress;
use crate::admission::{Connections, Limits};
use crate::budget::Budget;
use crate::daemon::{self, PidFile, RunAs};
use crate::error::{Error, Result};
use crate::fd_budget::{FdBudget, FdLimits, Plan};
use crate::sys::users;
use crate::systemd;
use crate::transport::Listener;

use super::{Appd, Logs, Server, Shared};

impl Appd {
    /// Binds the address: the daemon is reachable (connections queue)
    /// once this returns, and serves once [`Server::serve`] runs.
    ///
    /// # Errors
    ///
    /// [`Error::AlreadyRunning`] if a daemon serves the address,
    /// [`Error::Config`] for a bad address, a path that is not a socket, a
    /// non-loopback TCP address without an authkey, or descriptors passed
    /// by a service manager that are not what `LISTEN_FDS` promises (each
    /// a listening stream socket without close-on-exec) or a
    /// [`run_as`](Appd::run_as) user that does not exist,
    /// [`Error::System`] when the system refuses what binding needs (the
    /// pid file, the user database, switching to the `run_as` user),
    /// [`Error::Io`] otherwise.
    ///
    /// A TCP address without an authkey is logged as a warning: TCP
    /// carries no credentials, so on loopback every local user can call.
    pub fn bind(mut self, address: impl ToAddress) -> Result<Server> {
        // Sockets passed by a service manager first, before this process
        // opens anything (the user database, the pid file) that could take
        // a descriptor number LISTEN_FDS claims.
        let inherited = if self.config.socket_activation {
            systemd::take_listen_fds()?
        } else {
            Vec::new()
        };
        let address = address.to_address()?;
        // "The daemon's user" is the one it serves calls as: after
        // `run_as`, that user and not root. Resolved before the socket is
        // touched, so that a bad rule fails first.
        // Looked up once: the same user is the one privileges drop to.
        let run_as = match &self.config.run_as {
            Some(name) => Some(RunAs::look_up(name)?),
            None => None,
        };
        if run_as.is_none() && !self.config.keep_capabilities.is_empty() {
            return Err(Error::Config(format!(
                "keep_capabilities ({}) keeps them across run_as, which is not set",
                self.config.keep_capabilities.names()
            )));
        }
        let serving_uid = match &run_as {
            Some(user) => user.uid,
            None => rustix::process::geteuid().as_raw(),
        };
        self.registry.resolve_policies(serving_uid)?;
        if let Some(name) = &self.config.socket_group_name {
            let gid = users::group_by_name(name)?.ok_or_else(|| {
                Error::Config(format!("no group named {name:?} for the socket file"))
            })?;
            self.config.socket_file.group = Some(gid);
        }
        // The pid file first: a second instance must stop before it
        // touches the socket.
        let pid_file = match &self.config.pid_file {
            Some(path) => Some(PidFile::acquire(path)?),
            None => None,
        };
        let (listener, local) = match systemd::choose_inherited(
            inherited,
            self.config.socket_name.as_deref(),
        )? {
            Some((fd, name)) => {
                let (listener, local) = Listener::from_fd(fd, &address)?;
                tracing::info!(address = %local, name, "using the socket passed by the service manager");
                (listener, local)
            }
            None => {
                let listener = Listener::bind(&address, &self.config.socket_file)?;
                let local = listener.local_address(&address);
                (listener, local)
            }
        };
        if !listener.is_local()
            && self.config.authkey.is_none()
            && !self.config.allow_remote_without_authkey
        {
            return Err(Error::Config(format!(
                "{local} is reachable from other hosts and no authkey is set; \
                 set one, or allow_remote_without_authkey(true)"
            )));
        }
        if matches!(listener, Listener::Tcp(_)) && self.config.authkey.is_none() {
            // TCP carries no credentials: no policy can tell callers apart.
            if listener.is_local() {
                tracing::warn!(
                    address = %local,
                    "TCP without an authkey: every local user can call this daemon; \
                     set an authkey, or listen on a Unix socket"
                );
            } else {
                tracing::warn!(
                    address = %local,
                    "TCP without an authkey: anyone who can reach this address can \
                     call this daemon (allow_remote_without_authkey)"
                );
            }
        }
        let (limits, fd_limits) = self.plan_open_files(&listener);
        let budget = self
            .config
            .memory_budget
            .unwrap_or_else(|| default_memory_budget(self.config.max_frame));
        if budget < self.config.max_frame.saturating_mul(2) {
            tracing::warn!(
                memory_budget = budget,
                max_frame = self.config.max_frame,
                "the memory budget is less than twice max_frame: the largest calls will be refused"
            );
        }
        if let Some(user) = &run_as {
            let leftovers: Vec<&Path> = listener
                .socket_path()
                .into_iter()
                .chain(pid_file.as_ref().map(PidFile::path))
                .collect();
            daemon::drop_privileges(user, &self.config.keep_capabilities, &leftovers)?;
        }
        let (wake_rx, wake_tx) =
            rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).map_err(io::Error::from)?;
        Ok(Server {
            listener,
            address: local,
            shared: Arc::new(Shared {
                registry: self.registry,
                config: self.config,
                stopping: AtomicBool::new(false),
                wake_tx,
                conns: Arc::new(Mutex::new(Connections::new(limits))),
                conns_changed: Condvar::new(),
                next_id: AtomicU64::new(0),
                budget: Arc::new(Budget::new(budget)),
                fd_budget: fd_limits.map(FdBudget::new),
                serving_uid,
                logs: Logs::default(),
            }),
            wake_rx,
            on_reload: self.on_reload,
            pid_file,
        })
    }
}

impl Appd {
    /// The connection caps and the descriptor budget, from the settings,
    /// the listener and the open files the process may have (raised as far
    /// as the hard limit allows first), logged at info level.
    fn plan_open_files(&self, listener: &Listener) -> (Limits, Option<FdLimits>) {
        let max = self.config.max_connections;
        // Descriptors come only over a Unix socket, and are read only if
        // an endpoint takes some.
        let unix = matches!(listener, Listener::Unix { .. });
        let takes_fds = unix && self.registry.receives_fds();
        let open_files = daemon::raise_open_files(Plan::wanted(max, takes_fds, daemon::FDS_SPARE));
        let plan = Plan::new(open_files, daemon::FDS_SPARE, max, takes_fds);
        if plan.connections < max {
            tracing::warn!(
                open_files,
                max_connections = max,
                "the limit on open files holds {} connections, fewer than max_connections: \
                 serving at most that many (raise the hard limit, LimitNOFILE= under systemd)",
                plan.connections
            );
        }
        let limits = Limits::resolve(
            plan.connections,
            self.config.max_connections_per_uid,
            self.config.reserved_connections,
            self.config.max_handshakes,
            // No caller has a uid on TCP: a reserve would be no one's.
            unix,
        );
        match plan.fds {
            Some(fds) => tracing::info!(
                open_files,
                connections = limits.max,
                connections_reserved = limits.reserved,
                connections_per_uid = limits.per_uid,
                descriptors_in_progress = fds.total,
                descriptors_reserved = fds.reserved,
                descriptors_per_uid = fds.per_uid,
                "open files shared out"
            ),
            None => tracing::info!(
                open_files,
                connections = limits.max,
                connections_reserved = limits.reserved,
                connections_per_uid = limits.per_uid,
                "open files shared out"
            ),
        }
        (limits, plan.fds)
    }
}

/// The memory budget unless the program sets one: 256 MiB, sixteen frames
/// at the default limit, or two frames at `max_frame` (a request and its
/// reply) if that is more.
fn default_memory_budget(max_frame: usize) -> usize {
    (256 << 20usize).max(max_frame.saturating_mul(2))
}
