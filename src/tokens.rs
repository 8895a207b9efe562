//! Every mio token of the reactor's one poll, in one place: fixed tokens for the agent's own
//! descriptors, and the two ranges handed out one by one (never reused, so a late event for a
//! closed descriptor finds no route).

use mio::Token;

/// The signalfd (stop, reload, child exits).
pub const SIGNALS: Token = Token(0);
/// The inotify instance (log files, monitor.d, config.sh).
pub const INOTIFY: Token = Token(1);
/// The control socket's listener.
pub const CONTROL_LISTENER: Token = Token(2);
/// The systemd connection of the service checks.
pub const SYSTEMD_BUS: Token = Token(3);
/// The Mender client's connection (the JWT).
pub const MENDER_BUS: Token = Token(4);
/// The uplink worker wakes the reactor with this (it wants a new token).
pub const WAKER: Token = Token(5);
/// The rtnetlink socket of the connectivity checks (links, routes, addresses).
pub const NETLINK: Token = Token(6);
/// Checks' own descriptors count up from here: command pipes, pidfds, `dbus` checks'
/// connections.
pub const FIRST_CHECK_FD: usize = 16;
/// Control clients count up from here (fits a 32-bit `usize`: armv7).
pub const FIRST_CONTROL_CLIENT: usize = 1 << 30;
