//! Local control: a unix socket owned by the reactor, and the CLI verbs that use it (`status`,
//! `reload`, and the notification `mender-monitorctl` sends after changing files).
//!
//! The protocol is one JSON line each way per connection, versioned from the start
//! ([`protocol::VERSION`]). The socket is `/run/lookout.sock` under the root prefix, mode 0600.

pub mod client;
pub mod protocol;
pub mod server;
pub mod status;

use std::path::{Path, PathBuf};

/// Device path of the control socket.
pub const SOCKET: &str = "/run/lookout.sock";

/// The control socket under `root`.
pub fn socket_path(root: &Path) -> PathBuf {
    crate::config::layout::prefixed(root, SOCKET)
}
