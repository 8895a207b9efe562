//! What `lookout install` and `lookout uninstall` do to each path, decided from what is there:
//! pure functions of (what we want, what was seen), no I/O. The driver (`install::mod`) looks at
//! each path just before deciding, so a decision always sees the tree as earlier steps left it.

/// What a path is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A directory install needs but does not own (`/usr/bin`): created if missing, never removed.
    Parent,
    /// A directory of lookout's: removed by uninstall when empty, with everything in it by
    /// `--purge`. `exact`: a wider mode found is narrowed (the state directory, 0700).
    Dir {
        /// Mode to create it with.
        mode: u32,
        /// Whether another mode found is set back to `mode`.
        exact: bool,
    },
    /// The binary, copied from `--bin` (or the running one).
    Binary,
    /// A symbolic link to `target` (the Mender names of the binary).
    Link {
        /// What the link holds.
        target: &'static str,
    },
    /// A file install writes and owns (the systemd unit): replaced when different.
    Owned {
        /// Its contents.
        text: &'static str,
    },
    /// A file install writes once (config.sh, a demo check): never overwritten, since the user
    /// may have edited it; uninstall removes it only while unchanged (and not in use), or with
    /// `--purge`.
    Seed {
        /// Its contents.
        text: &'static str,
        /// Its mode.
        mode: u32,
    },
}

/// What was found at a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// Nothing.
    Missing,
    /// A directory (or a link to one), with its mode; `empty`: nothing in it (or only what this
    /// run removes).
    Dir {
        /// Permission bits.
        mode: u32,
        /// Nothing left in it.
        empty: bool,
    },
    /// A regular file: `same` = the contents install would write; `in_use` = a check that is
    /// enabled.
    File {
        /// The contents are what install writes.
        same: bool,
        /// Permission bits.
        mode: u32,
        /// An enabled check (its link in `enabled/` exists).
        in_use: bool,
    },
    /// A symbolic link (not to a directory) holding `target`.
    Link {
        /// What the link holds.
        target: String,
    },
    /// Something else: a socket, a FIFO, a device, a link where a directory was wanted.
    Other(&'static str),
}

/// What to do at a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Make it (missing).
    Create,
    /// Write it anew (different).
    Replace,
    /// Set its mode.
    Chmod(u32),
    /// Remove it (a directory: only if empty).
    Remove,
    /// Remove it and everything in it (`--purge`).
    RemoveAll,
    /// Already right.
    Unchanged,
    /// Left as it is, for the reason given.
    Keep(&'static str),
    /// Nothing there, nothing to do (uninstall).
    Absent,
    /// Cannot go on: the reason.
    Refuse(String),
}

impl Action {
    /// Whether carrying it out changes the file system.
    pub fn changes(&self) -> bool {
        matches!(self, Action::Create | Action::Replace | Action::Chmod(_) | Action::Remove | Action::RemoveAll)
    }
}

/// What install does at a path of `kind` where `seen` was found.
pub fn install(kind: Kind, seen: &Seen) -> Action {
    match (kind, seen) {
        (_, Seen::Missing) => Action::Create,
        (Kind::Parent, Seen::Dir { .. }) => Action::Unchanged,
        (Kind::Dir { mode, exact }, Seen::Dir { mode: found, .. }) => {
            if exact && *found != mode {
                Action::Chmod(mode)
            } else {
                Action::Unchanged
            }
        }
        (Kind::Parent | Kind::Dir { .. }, other) => Action::Refuse(format!("is {}, not a directory", what(other))),
        (Kind::Binary, Seen::File { same: true, mode, .. }) => {
            if *mode == 0o755 {
                Action::Unchanged
            } else {
                Action::Chmod(0o755)
            }
        }
        (Kind::Binary, Seen::File { .. } | Seen::Link { .. }) => Action::Replace,
        (Kind::Link { target }, Seen::Link { target: found }) => {
            if found == target {
                Action::Unchanged
            } else {
                Action::Replace
            }
        }
        (Kind::Link { .. }, other) => {
            Action::Refuse(format!("is {}, not a link to lookout: remove it first (Mender Monitor's own?)", what(other)))
        }
        (Kind::Owned { .. }, Seen::File { same: true, .. }) => Action::Unchanged,
        (Kind::Owned { .. }, Seen::File { .. }) => Action::Replace,
        (Kind::Owned { .. }, Seen::Link { .. }) => Action::Keep("a link (masked?): left as it is"),
        (Kind::Seed { .. }, Seen::File { .. } | Seen::Link { .. }) => Action::Keep("exists: never overwritten"),
        (Kind::Binary | Kind::Owned { .. } | Kind::Seed { .. }, other) => Action::Refuse(format!("is {}, not a file", what(other))),
    }
}

/// What uninstall does at a path of `kind` where `seen` was found.
pub fn uninstall(kind: Kind, seen: &Seen, purge: bool) -> Action {
    match (kind, seen) {
        (_, Seen::Missing) => Action::Absent,
        (Kind::Parent, _) => Action::Keep("not lookout's"),
        (Kind::Dir { .. }, Seen::Dir { .. }) if purge => Action::RemoveAll,
        (Kind::Dir { .. }, Seen::Dir { empty: true, .. }) => Action::Remove,
        (Kind::Dir { .. }, Seen::Dir { empty: false, .. }) => Action::Keep("not empty: your files (--purge removes them)"),
        (Kind::Binary, Seen::File { .. } | Seen::Link { .. }) => Action::Remove,
        (Kind::Link { target }, Seen::Link { target: found }) if found == target => Action::Remove,
        (Kind::Link { .. }, Seen::Link { .. }) => Action::Keep("a link, but not to lookout"),
        (Kind::Owned { .. }, Seen::File { .. }) => Action::Remove,
        (Kind::Seed { .. }, Seen::File { .. } | Seen::Link { .. }) if purge => Action::Remove,
        (Kind::Seed { .. }, Seen::File { same: true, in_use: false, .. }) => Action::Remove,
        (Kind::Seed { .. }, Seen::File { in_use: true, .. }) => Action::Keep("enabled: yours (--purge removes it)"),
        (Kind::Seed { .. }, Seen::File { .. } | Seen::Link { .. }) => Action::Keep("edited: yours (--purge removes it)"),
        (_, _) => Action::Keep("not what install made"),
    }
}

fn what(seen: &Seen) -> String {
    match seen {
        Seen::Missing => "missing".into(),
        Seen::Dir { .. } => "a directory".into(),
        Seen::File { .. } => "a regular file".into(),
        Seen::Link { target } => format!("a link to {target}"),
        Seen::Other(kind) => (*kind).into(),
    }
}

/// What systemd said about the agent's unit before install or uninstall.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UnitState {
    /// `systemctl is-enabled` said `enabled`.
    pub enabled: bool,
    /// `systemctl is-active` said `active`.
    pub active: bool,
}

/// The `systemctl` calls that bring the unit in line after install: a changed unit file is
/// reloaded, the unit enabled and started, and restarted if it ran an older binary or unit.
pub fn install_systemctl(unit_changed: bool, binary_changed: bool, state: UnitState, unit: &'static str) -> Vec<[&'static str; 2]> {
    let mut calls = Vec::new();
    if unit_changed {
        calls.push(["daemon-reload", ""]);
    }
    if !state.enabled {
        calls.push(["enable", unit]);
    }
    if !state.active {
        calls.push(["start", unit]);
    } else if unit_changed || binary_changed {
        calls.push(["restart", unit]);
    }
    calls
}

/// The `systemctl` calls before uninstall removes files: stop and disable the unit.
pub fn uninstall_systemctl(state: UnitState, unit: &'static str) -> Vec<[&'static str; 2]> {
    let mut calls = Vec::new();
    if state.active {
        calls.push(["stop", unit]);
    }
    if state.enabled {
        calls.push(["disable", unit]);
    }
    calls
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: Kind = Kind::Seed { text: "X=1\n", mode: 0o644 };
    const UNIT: Kind = Kind::Owned { text: "[Unit]\n" };
    const STATE: Kind = Kind::Dir { mode: 0o700, exact: true };
    const CONF_DIR: Kind = Kind::Dir { mode: 0o755, exact: false };

    fn file(same: bool) -> Seen {
        Seen::File { same, mode: 0o644, in_use: false }
    }

    #[test]
    fn install_creates_what_is_missing_and_leaves_what_is_right() {
        for kind in [Kind::Parent, STATE, Kind::Binary, Kind::Link { target: "lookout" }, UNIT, SEED] {
            assert_eq!(install(kind, &Seen::Missing), Action::Create);
        }
        assert_eq!(install(Kind::Binary, &Seen::File { same: true, mode: 0o755, in_use: false }), Action::Unchanged);
        assert_eq!(install(Kind::Link { target: "lookout" }, &Seen::Link { target: "lookout".into() }), Action::Unchanged);
        assert_eq!(install(UNIT, &file(true)), Action::Unchanged);
        assert_eq!(install(CONF_DIR, &Seen::Dir { mode: 0o775, empty: true }), Action::Unchanged);
    }

    #[test]
    fn install_never_overwrites_a_config_or_a_check() {
        assert_eq!(install(SEED, &file(false)), Action::Keep("exists: never overwritten"));
        assert_eq!(install(SEED, &file(true)), Action::Keep("exists: never overwritten"));
        // config.sh linked to a data partition stays a link.
        assert_eq!(install(SEED, &Seen::Link { target: "/data/config.sh".into() }), Action::Keep("exists: never overwritten"));
    }

    #[test]
    fn install_updates_what_it_owns() {
        assert_eq!(install(Kind::Binary, &file(false)), Action::Replace);
        assert_eq!(install(Kind::Binary, &Seen::File { same: true, mode: 0o700, in_use: false }), Action::Chmod(0o755));
        assert_eq!(install(UNIT, &file(false)), Action::Replace);
        assert_eq!(install(Kind::Link { target: "lookout" }, &Seen::Link { target: "/old/lookout".into() }), Action::Replace);
        assert_eq!(install(STATE, &Seen::Dir { mode: 0o755, empty: false }), Action::Chmod(0o700));
    }

    #[test]
    fn install_refuses_what_it_would_have_to_destroy() {
        let a = install(Kind::Link { target: "lookout" }, &file(false));
        assert!(matches!(&a, Action::Refuse(why) if why.starts_with("is a regular file, not a link to lookout")), "{a:?}");
        let a = install(CONF_DIR, &file(false));
        assert_eq!(a, Action::Refuse("is a regular file, not a directory".into()));
        let a = install(SEED, &Seen::Dir { mode: 0o755, empty: true });
        assert_eq!(a, Action::Refuse("is a directory, not a file".into()));
        let a = install(Kind::Binary, &Seen::Other("a FIFO"));
        assert_eq!(a, Action::Refuse("is a FIFO, not a file".into()));
    }

    #[test]
    fn uninstall_keeps_the_users_files_unless_purging() {
        assert_eq!(uninstall(SEED, &file(true), false), Action::Remove, "an unchanged default is not the user's");
        assert_eq!(uninstall(SEED, &file(false), false), Action::Keep("edited: yours (--purge removes it)"));
        let enabled = Seen::File { same: true, mode: 0o644, in_use: true };
        assert_eq!(uninstall(SEED, &enabled, false), Action::Keep("enabled: yours (--purge removes it)"));
        assert_eq!(uninstall(SEED, &file(false), true), Action::Remove);
        assert_eq!(
            uninstall(CONF_DIR, &Seen::Dir { mode: 0o755, empty: false }, false),
            Action::Keep("not empty: your files (--purge removes them)")
        );
        assert_eq!(uninstall(CONF_DIR, &Seen::Dir { mode: 0o755, empty: true }, false), Action::Remove);
        assert_eq!(uninstall(STATE, &Seen::Dir { mode: 0o700, empty: false }, true), Action::RemoveAll);
    }

    #[test]
    fn uninstall_removes_only_what_is_lookouts() {
        assert_eq!(uninstall(Kind::Binary, &file(false), false), Action::Remove);
        assert_eq!(uninstall(UNIT, &file(false), false), Action::Remove);
        let link = Kind::Link { target: "lookout" };
        assert_eq!(uninstall(link, &Seen::Link { target: "lookout".into() }, true), Action::Remove);
        assert_eq!(
            uninstall(link, &Seen::Link { target: "/usr/share/mender-monitor/ctl.sh".into() }, true),
            Action::Keep("a link, but not to lookout")
        );
        assert_eq!(uninstall(link, &file(false), true), Action::Keep("not what install made"));
        assert_eq!(uninstall(Kind::Parent, &Seen::Dir { mode: 0o755, empty: true }, true), Action::Keep("not lookout's"));
        for kind in [Kind::Parent, STATE, Kind::Binary, link, UNIT, SEED] {
            assert_eq!(uninstall(kind, &Seen::Missing, true), Action::Absent);
        }
    }

    #[test]
    fn systemctl_calls_bring_the_unit_in_line_and_nothing_more() {
        const U: &str = "mender-monitor.service";
        let fresh = UnitState::default();
        let running = UnitState { enabled: true, active: true };
        assert_eq!(install_systemctl(true, true, fresh, U), vec![["daemon-reload", ""], ["enable", U], ["start", U]]);
        assert_eq!(install_systemctl(false, false, running, U), Vec::<[&str; 2]>::new(), "a second install calls nothing");
        assert_eq!(install_systemctl(false, true, running, U), vec![["restart", U]], "a new binary is restarted into");
        assert_eq!(install_systemctl(true, false, running, U), vec![["daemon-reload", ""], ["restart", U]]);
        assert_eq!(install_systemctl(false, false, UnitState { enabled: true, active: false }, U), vec![["start", U]]);
        assert_eq!(uninstall_systemctl(running, U), vec![["stop", U], ["disable", U]]);
        assert_eq!(uninstall_systemctl(fresh, U), Vec::<[&str; 2]>::new());
    }
}
