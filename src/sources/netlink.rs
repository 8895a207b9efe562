//! The kernel's routing events: one `NETLINK_ROUTE` socket in the reactor's poll, subscribed to
//! links, IPv4/IPv6 routes and addresses, opened while any `connectivity` check runs and shared
//! by all of them. Each readiness is read to its end (at most [`MAX_DATAGRAMS`] a turn) and
//! summed up as one [`NetChange`]: what went down (a link, a route or an address removed), whether
//! anything came up, whether messages were lost (`ENOBUFS`: the checks then probe again).
//!
//! [`parse`] reads only what it needs (message header, link flags and name, route family,
//! table, type and destination, address family), checks every length, and skips and counts a
//! malformed message; it never panics on bytes. Messages not from the kernel are ignored.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, OwnedFd};

use mio::unix::SourceFd;
use mio::{Interest, Registry};
use nix::errno::Errno;
use nix::sys::socket::{self, AddressFamily, NetlinkAddr, SockFlag, SockProtocol, SockType};

use crate::detect::connectivity::NetChange;

/// Links, IPv4 addresses and routes, IPv6 addresses and routes (`RTMGRP_*`).
const GROUPS: u32 = 0x1 | 0x10 | 0x40 | 0x100 | 0x400;
/// Datagrams read per readiness; the rest waits for the next event (and counts as an overrun).
pub const MAX_DATAGRAMS: usize = 4096;
/// The receive buffer: a datagram longer than this is cut, and its last message is malformed.
const BUF_BYTES: usize = 32 * 1024;

const NLMSG_HDR: usize = 16;
const NLMSG_OVERRUN: u16 = 4;
const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const RTM_NEWADDR: u16 = 20;
const RTM_DELADDR: u16 = 21;
const RTM_NEWROUTE: u16 = 24;
const RTM_DELROUTE: u16 = 25;
const IFF_UP: u32 = 0x1;
const IFF_RUNNING: u32 = 0x40;
const IFF_LOWER_UP: u32 = 0x1_0000;
const IFLA_IFNAME: u16 = 3;
const RTA_DST: u16 = 1;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const RT_TABLE_LOCAL: u8 = 255;
const RTN_UNICAST: u8 = 1;
const RTM_F_CLONED: u32 = 0x200;
const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;

/// What the socket has seen, for `status`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct NetlinkCounters {
    /// Messages read.
    pub messages: u64,
    /// Link, route and address changes that made a check probe.
    pub changes: u64,
    /// Messages skipped: too short, lengths that do not add up.
    pub malformed: u64,
    /// Times messages were lost (`ENOBUFS`, or [`MAX_DATAGRAMS`] reached).
    pub overruns: u64,
    /// Datagrams not from the kernel (ignored).
    pub foreign: u64,
    /// Read errors other than the above.
    pub errors: u64,
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// The attributes (`rtattr`: length, type, value) in `b`; stops at the first malformed one.
fn attrs(b: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    let mut at = 0;
    std::iter::from_fn(move || {
        let len = usize::from(u16_at(b, at)?);
        let kind = u16_at(b, at + 2)?;
        let value = b.get(at + 4..at.checked_add(len)?).filter(|_| len >= 4)?;
        at += len.next_multiple_of(4);
        Some((kind, value))
    })
}

fn ip(family: u8, v: &[u8]) -> Option<IpAddr> {
    match family {
        AF_INET => Some(IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(v).ok()?))),
        AF_INET6 => Some(IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(v).ok()?))),
        _ => None,
    }
}

fn family_name(family: u8) -> &'static str {
    if family == AF_INET6 { "IPv6" } else { "IPv4" }
}

/// One message's meaning: `Some(Some(why))` went down, `Some(None)` came up, `None` nothing of
/// interest; `Err` if malformed.
fn message(kind: u16, body: &[u8]) -> Result<Option<Option<String>>, ()> {
    match kind {
        RTM_NEWLINK | RTM_DELLINK => {
            // ifinfomsg: family, pad, type (u16), index (i32), flags, change.
            let (index, flags, change) = (u32_at(body, 4).ok_or(())?, u32_at(body, 8).ok_or(())?, u32_at(body, 12).ok_or(())?);
            let name = attrs(body.get(16..).unwrap_or_default())
                .find(|(k, _)| *k == IFLA_IFNAME)
                .map(|(_, v)| String::from_utf8_lossy(v.split(|b| *b == 0).next().unwrap_or_default()).into_owned())
                .unwrap_or_else(|| format!("#{index}"));
            if kind == RTM_DELLINK {
                return Ok(Some(Some(format!("link {name} was removed"))));
            }
            if change & (IFF_UP | IFF_RUNNING | IFF_LOWER_UP) == 0 {
                return Ok(None);
            }
            let up = flags & IFF_UP != 0 && flags & IFF_RUNNING != 0;
            Ok(Some((!up).then(|| format!("link {name} went down"))))
        }
        RTM_NEWROUTE | RTM_DELROUTE => {
            // rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type, flags (u32).
            let h = body.get(..12).ok_or(())?;
            let (family, dst_len, table, rtype) = (h[0], h[1], h[4], h[7]);
            let flags = u32_at(h, 8).ok_or(())?;
            if table == RT_TABLE_LOCAL || rtype != RTN_UNICAST || flags & RTM_F_CLONED != 0 {
                return Ok(None);
            }
            if kind == RTM_NEWROUTE {
                return Ok(Some(None));
            }
            let fam = family_name(family);
            if dst_len == 0 {
                return Ok(Some(Some(format!("the default route ({fam}) was removed"))));
            }
            let dst = attrs(&body[12..]).find(|(k, _)| *k == RTA_DST).and_then(|(_, v)| ip(family, v));
            let to = dst.map(|d| format!("{d}/{dst_len}")).unwrap_or_else(|| format!("a {fam} network"));
            Ok(Some(Some(format!("the route to {to} was removed"))))
        }
        RTM_NEWADDR | RTM_DELADDR => {
            // ifaddrmsg: family, prefixlen, flags, scope, index (u32).
            let h = body.get(..8).ok_or(())?;
            if kind == RTM_NEWADDR {
                return Ok(Some(None));
            }
            let a = attrs(&body[8..]).find(|(k, _)| *k == IFA_LOCAL || *k == IFA_ADDRESS).and_then(|(_, v)| ip(h[0], v));
            let what = a.map(|a| a.to_string()).unwrap_or_else(|| format!("an {} address", family_name(h[0])));
            Ok(Some(Some(format!("address {what} was removed"))))
        }
        _ => Ok(None),
    }
}

/// Reads one datagram of messages into `change`; counts them and the malformed ones. A length
/// that does not add up ends the datagram.
pub fn parse(datagram: &[u8], change: &mut NetChange, counters: &mut NetlinkCounters) {
    let mut at = 0;
    while datagram.len().saturating_sub(at) >= NLMSG_HDR {
        let (Some(len), Some(kind)) = (u32_at(datagram, at), u16_at(datagram, at + 4)) else { break };
        let len = len as usize;
        let Some(msg) = datagram.get(at..at.saturating_add(len)).filter(|_| len >= NLMSG_HDR) else {
            counters.malformed += 1;
            return;
        };
        counters.messages += 1;
        if kind == NLMSG_OVERRUN {
            change.overrun = true;
            counters.overruns += 1;
        }
        match message(kind, &msg[NLMSG_HDR..]) {
            Err(()) => counters.malformed += 1,
            Ok(None) => {}
            Ok(Some(down)) => {
                counters.changes += 1;
                match down {
                    Some(why) => {
                        change.down.get_or_insert(why);
                    }
                    None => change.up = true,
                }
            }
        }
        at = at.saturating_add(len.next_multiple_of(4));
    }
    if at < datagram.len() && datagram.len() - at < NLMSG_HDR {
        counters.malformed += 1;
    }
}

/// The socket, open while any connectivity check runs.
#[derive(Debug)]
pub struct Netlink {
    registry: Registry,
    token: mio::Token,
    socket: Option<OwnedFd>,
    users: usize,
    buf: Vec<u8>,
    counters: NetlinkCounters,
}

impl Netlink {
    /// A closed socket that will register with `registry` as `token` when opened.
    pub fn new(registry: Registry, token: mio::Token) -> Self {
        Netlink { registry, token, socket: None, users: 0, buf: Vec::new(), counters: NetlinkCounters::default() }
    }

    /// A connectivity check starts: the socket opens for the first one. A socket that cannot be
    /// opened (no netlink, e.g. some emulators) leaves probes on their interval; the error says so.
    pub fn acquire(&mut self) -> Result<(), String> {
        self.users += 1;
        if self.socket.is_some() {
            return Ok(());
        }
        let fd = open()
            .map_err(|e| format!("cannot follow the kernel's routing events (rtnetlink): {}; probing on the interval only", e.desc()))?;
        let raw = fd.as_raw_fd();
        self.registry
            .register(&mut SourceFd(&raw), self.token, Interest::READABLE)
            .map_err(|e| format!("cannot poll the rtnetlink socket: {e}; probing on the interval only"))?;
        self.socket = Some(fd);
        self.buf = vec![0; BUF_BYTES];
        Ok(())
    }

    /// A connectivity check stops: the socket closes with the last one.
    pub fn release(&mut self) {
        self.users = self.users.saturating_sub(1);
        if self.users == 0 {
            if let Some(fd) = self.socket.take() {
                let _ = self.registry.deregister(&mut SourceFd(&fd.as_raw_fd()));
            }
            self.buf = Vec::new();
        }
    }

    /// Whether the socket is open.
    pub fn is_open(&self) -> bool {
        self.socket.is_some()
    }

    /// Counters so far.
    pub fn counters(&self) -> NetlinkCounters {
        self.counters
    }

    /// Reads what is waiting (edge-triggered: to `EAGAIN`, at most [`MAX_DATAGRAMS`]).
    pub fn on_ready(&mut self) -> NetChange {
        let mut change = NetChange::default();
        let Some(fd) = &self.socket else { return change };
        let raw = fd.as_raw_fd();
        let mut n = 0;
        loop {
            if n == MAX_DATAGRAMS {
                change.overrun = true;
                self.counters.overruns += 1;
                break;
            }
            match socket::recvfrom::<NetlinkAddr>(raw, &mut self.buf) {
                Ok((len, from)) => {
                    n += 1;
                    if from.is_some_and(|a| a.pid() != 0) {
                        self.counters.foreign += 1;
                        continue;
                    }
                    parse(&self.buf[..len.min(self.buf.len())], &mut change, &mut self.counters);
                }
                Err(Errno::EAGAIN) => break,
                Err(Errno::EINTR) => {}
                Err(Errno::ENOBUFS) => {
                    change.overrun = true;
                    self.counters.overruns += 1;
                }
                Err(e) => {
                    self.counters.errors += 1;
                    crate::warn!("rtnetlink: {}", e.desc());
                    break;
                }
            }
        }
        change
    }
}

/// A non-blocking `NETLINK_ROUTE` socket bound to [`GROUPS`].
fn open() -> Result<OwnedFd, Errno> {
    let fd = socket::socket(
        AddressFamily::Netlink,
        SockType::Raw,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        SockProtocol::NetlinkRoute,
    )?;
    socket::bind(fd.as_raw_fd(), &NetlinkAddr::new(0, GROUPS))?;
    Ok(fd)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(kind: u16, body: &[u8]) -> Vec<u8> {
        let len = (NLMSG_HDR + body.len()) as u32;
        let mut m = Vec::new();
        m.extend_from_slice(&len.to_ne_bytes());
        m.extend_from_slice(&kind.to_ne_bytes());
        m.extend_from_slice(&[0; 10]);
        m.extend_from_slice(body);
        while m.len() % 4 != 0 {
            m.push(0);
        }
        m
    }

    fn attr(kind: u16, value: &[u8]) -> Vec<u8> {
        let mut a = Vec::new();
        a.extend_from_slice(&((4 + value.len()) as u16).to_ne_bytes());
        a.extend_from_slice(&kind.to_ne_bytes());
        a.extend_from_slice(value);
        while a.len() % 4 != 0 {
            a.push(0);
        }
        a
    }

    fn link(kind: u16, flags: u32, change: u32, name: &str) -> Vec<u8> {
        let mut b = vec![0u8, 0, 1, 0];
        b.extend_from_slice(&7u32.to_ne_bytes());
        b.extend_from_slice(&flags.to_ne_bytes());
        b.extend_from_slice(&change.to_ne_bytes());
        b.extend(attr(IFLA_IFNAME, format!("{name}\0").as_bytes()));
        msg(kind, &b)
    }

    fn route(kind: u16, family: u8, dst_len: u8, table: u8, dst: &[u8]) -> Vec<u8> {
        let mut b = vec![family, dst_len, 0, 0, table, 4, 0, RTN_UNICAST, 0, 0, 0, 0];
        if !dst.is_empty() {
            b.extend(attr(RTA_DST, dst));
        }
        msg(kind, &b)
    }

    fn run(datagram: &[u8]) -> (NetChange, NetlinkCounters) {
        let mut c = NetChange::default();
        let mut n = NetlinkCounters::default();
        parse(datagram, &mut c, &mut n);
        (c, n)
    }

    #[test]
    fn a_link_going_down_and_coming_up() {
        let (c, n) = run(&link(RTM_NEWLINK, 0x1002, IFF_UP, "veth0"));
        assert_eq!(c.down.as_deref(), Some("link veth0 went down"));
        assert_eq!((n.messages, n.changes), (1, 1));
        let (c, _) = run(&link(RTM_NEWLINK, IFF_UP | IFF_RUNNING | IFF_LOWER_UP, IFF_RUNNING, "veth0"));
        assert_eq!((c.down, c.up), (None, true));
        // Carrier lost, administratively up: down.
        let (c, _) = run(&link(RTM_NEWLINK, IFF_UP, IFF_RUNNING | IFF_LOWER_UP, "eth0"));
        assert_eq!(c.down.as_deref(), Some("link eth0 went down"));
        // Other flags changed (promiscuous): nothing.
        let (c, n) = run(&link(RTM_NEWLINK, IFF_UP | IFF_RUNNING | 0x100, 0x100, "eth0"));
        assert!(c.is_empty());
        assert_eq!(n.changes, 0);
        let (c, _) = run(&link(RTM_DELLINK, 0, 0, "wlan0"));
        assert_eq!(c.down.as_deref(), Some("link wlan0 was removed"));
    }

    #[test]
    fn routes_and_addresses() {
        let (c, _) = run(&route(RTM_DELROUTE, AF_INET, 0, 254, &[]));
        assert_eq!(c.down.as_deref(), Some("the default route (IPv4) was removed"));
        let (c, _) = run(&route(RTM_DELROUTE, AF_INET, 30, 254, &[10, 0, 0, 0]));
        assert_eq!(c.down.as_deref(), Some("the route to 10.0.0.0/30 was removed"));
        let (c, _) = run(&route(RTM_DELROUTE, AF_INET6, 0, 254, &[]));
        assert_eq!(c.down.as_deref(), Some("the default route (IPv6) was removed"));
        // The local table (our own addresses) is not a way out.
        assert!(run(&route(RTM_DELROUTE, AF_INET, 32, RT_TABLE_LOCAL, &[10, 0, 0, 1])).0.is_empty());
        assert!(run(&route(RTM_NEWROUTE, AF_INET, 24, 254, &[10, 0, 0, 0])).0.up);
        let mut b = vec![AF_INET, 30, 0, 0];
        b.extend_from_slice(&7u32.to_ne_bytes());
        b.extend(attr(IFA_LOCAL, &[10, 0, 0, 1]));
        let (c, _) = run(&msg(RTM_DELADDR, &b));
        assert_eq!(c.down.as_deref(), Some("address 10.0.0.1 was removed"));
        assert!(run(&msg(RTM_NEWADDR, &b)).0.up);
    }

    #[test]
    fn several_messages_the_first_down_is_kept() {
        let mut d = link(RTM_NEWLINK, 0, IFF_UP, "veth0");
        d.extend(route(RTM_DELROUTE, AF_INET, 0, 254, &[]));
        d.extend(route(RTM_NEWROUTE, AF_INET, 24, 254, &[]));
        d.extend(msg(NLMSG_OVERRUN, &[]));
        let (c, n) = run(&d);
        assert_eq!(c, NetChange { down: Some("link veth0 went down".into()), up: true, overrun: true });
        assert_eq!((n.messages, n.changes, n.overruns), (4, 3, 1));
    }

    #[test]
    fn malformed_bytes_are_skipped_and_counted() {
        // Too short for its type.
        let (c, n) = run(&msg(RTM_NEWLINK, &[0, 0, 1]));
        assert!(c.is_empty());
        assert_eq!(n.malformed, 1);
        // A length past the end, a length below the header, a tail too short for a header.
        let mut m = link(RTM_NEWLINK, 0, IFF_UP, "x");
        m[0..4].copy_from_slice(&1000u32.to_ne_bytes());
        assert_eq!(run(&m).1.malformed, 1);
        m[0..4].copy_from_slice(&3u32.to_ne_bytes());
        assert_eq!(run(&m).1.malformed, 1);
        assert_eq!(run(&[1, 2, 3]).1.malformed, 1);
        // An attribute whose length runs past the message: no name, still read.
        let mut b = vec![0u8, 0, 1, 0];
        b.extend_from_slice(&7u32.to_ne_bytes());
        b.extend_from_slice(&0u32.to_ne_bytes());
        b.extend_from_slice(&IFF_UP.to_ne_bytes());
        b.extend_from_slice(&[200, 0, 3, 0, b'x', 0, 0, 0]);
        assert_eq!(run(&msg(RTM_NEWLINK, &b)).0.down.as_deref(), Some("link #7 went down"));
        // Random bytes never panic.
        let mut seed = 0x2545_f491_u32;
        for len in 0..600 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 17;
                    seed ^= seed << 5;
                    (seed % 7) as u8 * 8
                })
                .collect();
            run(&bytes);
        }
    }
}
