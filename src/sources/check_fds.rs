//! The checks' own fds in the reactor's poll (commands' pipes, pidfds of sysV services, `dbus`
//! checks' bus connections): each fd gets a token that is never given out again, so an event for a restarted
//! command's old pipe cannot reach the new one, and the token says whose fd it is.

use std::collections::HashMap;
use std::io;

use std::os::fd::RawFd;

use mio::unix::SourceFd;
use mio::unix::pipe::Receiver;
use mio::{Interest, Registry, Token};

use super::watch::Listener;

/// The pipes registered with the poll, and whom each one wakes.
#[derive(Debug)]
pub struct CheckFds {
    registry: Registry,
    routes: HashMap<Token, Listener>,
    next: usize,
}

impl CheckFds {
    /// CheckFds registered through `registry` (a clone of the reactor's).
    pub fn new(registry: Registry) -> Self {
        CheckFds { registry, routes: HashMap::new(), next: crate::tokens::FIRST_CHECK_FD }
    }

    /// Registers `pipe` for readability; its events wake `listener`.
    pub fn register(&mut self, pipe: &mut Receiver, listener: Listener) -> io::Result<Token> {
        let token = Token(self.next);
        self.next += 1;
        self.registry.register(pipe, token, Interest::READABLE)?;
        self.routes.insert(token, listener);
        Ok(token)
    }

    /// Removes `pipe` (registered as `token`) before it is closed.
    pub fn deregister(&mut self, pipe: &mut Receiver, token: Token) {
        self.routes.remove(&token);
        // Failure means the fd is already gone from the poll; closing it removes it anyway.
        let _ = self.registry.deregister(pipe);
    }

    /// Registers a raw fd (a pidfd) for readability; its events wake `listener`.
    pub fn register_fd(&mut self, fd: RawFd, listener: Listener) -> io::Result<Token> {
        let token = Token(self.next);
        self.next += 1;
        self.registry.register(&mut SourceFd(&fd), token, Interest::READABLE)?;
        self.routes.insert(token, listener);
        Ok(token)
    }

    /// Gives `listener` a fresh token and lets `register` put its own source (a D-Bus
    /// connection) into the poll with it.
    pub fn register_with<T>(&mut self, listener: Listener, register: impl FnOnce(&Registry, Token) -> io::Result<T>) -> io::Result<T> {
        let token = Token(self.next);
        self.next += 1;
        let t = register(&self.registry, token)?;
        self.routes.insert(token, listener);
        Ok(t)
    }

    /// Forgets the route of `token`, whose source was removed from the poll by its owner.
    pub fn forget(&mut self, token: Token) {
        self.routes.remove(&token);
    }

    /// The poll's registry, for removing a source registered by [`register_with`](Self::register_with).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Removes a raw fd (registered as `token`) before it is closed.
    pub fn deregister_fd(&mut self, fd: RawFd, token: Token) {
        self.routes.remove(&token);
        let _ = self.registry.deregister(&mut SourceFd(&fd));
    }

    /// Whom an event on `token` is for; `None` for a stale token (its pipe is closed).
    pub fn route(&self, token: Token) -> Option<Listener> {
        self.routes.get(&token).copied()
    }

    /// CheckFds registered now.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// Whether no pipe is registered.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }
}
