//! A systemd booted in a container: the host's own systemd under systemd-nspawn --volatile=yes
//! on the host's /usr (see TESTING.md), with a bus socket, a units directory and a bin directory
//! the test can see. The test first moves itself into a cgroup of its own (a systemd started from
//! the root cgroup takes over every process on the machine) and leaves it again on drop.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::*;

/// A systemd booted in a container, stopped and cleaned up on drop.
pub struct Container {
    /// The test's directory: `bus/`, `units/` (the container's /etc/systemd/system), `bin/`
    /// (its /usr/local/bin), `agent/` (its /var/lookout).
    pub dir: PathBuf,
    nspawn: Option<Child>,
    /// The container's systemd, as the host sees it.
    pub pid1: i32,
    cgroups: Vec<PathBuf>,
}

impl Container {
    /// Boots the host's systemd in a container with `units` in its /etc/systemd/system.
    pub fn boot(units: &[(&str, &str)]) -> Container {
        Container::boot_with(units, false)
    }

    /// As [`Container::boot`]; `writable_usr`: the container's /usr is an overlay on the host's
    /// (changes go to a directory of the test's, the host's /usr stays as it is), for a test that
    /// installs lookout inside.
    pub fn boot_with(units: &[(&str, &str)], writable_usr: bool) -> Container {
        assert!(
            Path::new("/usr/bin/systemd-nspawn").exists(),
            "systemd-nspawn is missing: apt-get install systemd-container (scripts/test does)"
        );
        let dir = std::env::temp_dir().join(format!("lookout-systemd-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        for d in ["bus", "units", "bin", "agent", "usr-upper"] {
            fs::create_dir_all(dir.join(d)).unwrap();
        }
        for (name, text) in units {
            fs::write(dir.join("units").join(name), text).unwrap();
        }
        std::os::unix::fs::symlink("/dev/null", dir.join("units/systemd-firstboot.service")).unwrap();
        fs::copy(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/crasher-service.sh"), dir.join("bin/crasher-service.sh")).unwrap();
        // The test suite's stand-in for `docker events` (no Docker engine on the test machines).
        fs::copy(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/docker"), dir.join("bin/docker")).unwrap();
        fs::set_permissions(dir.join("bin/docker"), fs::Permissions::from_mode(0o755)).unwrap();
        // Our own cgroup first, or the container's systemd adopts every process of ours.
        let mut cgroups = Vec::new();
        for h in ["/sys/fs/cgroup/systemd", "/sys/fs/cgroup/unified"] {
            if Path::new(h).join("cgroup.procs").exists() {
                let g = Path::new(h).join(format!("lookout-test-{}", std::process::id()));
                fs::create_dir_all(&g).unwrap();
                fs::write(g.join("cgroup.procs"), std::process::id().to_string()).unwrap();
                cgroups.push(g);
            }
        }
        let console = fs::File::create(dir.join("console.log")).unwrap();
        let mut overlay = Vec::new();
        if writable_usr {
            overlay.push(format!("--overlay=/usr:{}:/usr", dir.join("usr-upper").display()));
        }
        let nspawn = Command::new("setsid")
            .args([
                "systemd-nspawn",
                "-D",
                "/",
                "--volatile=yes",
                "--boot",
                "--register=no",
                "--keep-unit",
                "--private-network",
                "--console=read-only",
            ])
            .arg(format!("--bind={}:/run/dbus", dir.join("bus").display()))
            .arg(format!("--bind-ro={}:/etc/systemd/system", dir.join("units").display()))
            .arg(format!("--bind-ro={}:/usr/local/bin", dir.join("bin").display()))
            // The agent, to run inside, and a root for it the test can see.
            .arg(format!("--bind-ro={}:/opt/lookout", bin().parent().unwrap().display()))
            .arg(format!("--bind={}:/var/lookout", dir.join("agent").display()))
            .args(&overlay)
            .arg("systemd.firstboot=off")
            .stdin(Stdio::null())
            .stdout(console.try_clone().unwrap())
            .stderr(console)
            .spawn()
            .unwrap();
        let mut c = Container { dir, nspawn: Some(nspawn), pid1: 0, cgroups };
        let nspawn_pid = c.nspawn.as_ref().unwrap().id() as i32;
        wait_until("the container's systemd to start", || {
            c.pid1 = children_of(nspawn_pid)
                .into_iter()
                .find(|p| fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|s| s.trim() == "systemd"))
                .unwrap_or(0);
            c.pid1 != 0
        });
        wait_until("the container to finish booting", || {
            let out = c.exec(&["systemctl", "is-system-running"]);
            out == "running" || out == "degraded"
        });
        c
    }

    /// Makes the container's /etc/systemd/system writable (it is read-only while booting: an
    /// empty writable one looks like a first boot, and systemd would enable every unit the host
    /// has installed). Writes land in `units/`.
    pub fn units_writable(&self) {
        let out = Command::new("nsenter")
            .args(["-t", &self.pid1.to_string(), "-m", "mount", "-o", "remount,bind,rw", "/etc/systemd/system"])
            .output()
            .unwrap();
        assert!(out.status.success(), "remount /etc/systemd/system: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// Runs a command inside; returns its trimmed stdout.
    pub fn exec(&self, args: &[&str]) -> String {
        let out = Command::new("nsenter").args(["-t", &self.pid1.to_string(), "-a"]).args(args).output().unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    pub fn systemctl(&self, args: &[&str]) {
        let mut a = vec!["systemctl"];
        a.extend_from_slice(args);
        let out = Command::new("nsenter").args(["-t", &self.pid1.to_string(), "-a"]).args(&a).output().unwrap();
        assert!(out.status.success(), "systemctl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// Runs `script` with `sh -e` inside, in /root, as a user types it; insists on success;
    /// returns stdout. Output goes to files, not pipes: a command the script leaves running in
    /// the background (`./crasher.py ... &`) must not hold the call open.
    pub fn sh(&self, script: &str) -> String {
        self.script("sh", script)
    }

    /// As [`Container::sh`], with bash (for `source` and the like).
    pub fn bash(&self, script: &str) -> String {
        self.script("bash", script)
    }

    fn script(&self, shell: &str, script: &str) -> String {
        let out = self.dir.join("sh.out");
        let err = self.dir.join("sh.err");
        let status = Command::new("nsenter")
            .args(["-t", &self.pid1.to_string(), "-a", shell, "-ec", &format!("cd /root\n{script}")])
            .env_remove("LOOKOUT_ROOT")
            .env_remove("DBUS_SYSTEM_BUS_ADDRESS")
            .stdin(Stdio::null())
            .stdout(fs::File::create(&out).unwrap())
            .stderr(fs::File::create(&err).unwrap())
            .status()
            .unwrap();
        let (out, err) = (fs::read_to_string(out).unwrap_or_default(), fs::read_to_string(err).unwrap_or_default());
        assert!(status.success(), "{script}\n-> {status}\nstdout:\n{out}\nstderr:\n{err}");
        out
    }

    /// Puts `bytes` at `path` inside ("upload the file to ...").
    pub fn upload(&self, path: &str, bytes: impl AsRef<[u8]>) {
        let src = self.dir.join("upload");
        fs::write(&src, bytes).unwrap();
        let status = Command::new("nsenter")
            .args(["-t", &self.pid1.to_string(), "-a", "sh", "-c", &format!("cat > {path}")])
            .stdin(fs::File::open(&src).unwrap())
            .status()
            .unwrap();
        assert!(status.success(), "upload {path}");
    }

    pub fn bus(&self) -> String {
        format!("unix:path={}", self.dir.join("bus/system_bus_socket").display())
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        if let Some(mut n) = self.nspawn.take() {
            // An orderly poweroff; if it does not come, the container is killed.
            let _ = Command::new("kill").args(["-s", "SIGRTMIN+4", &self.pid1.to_string()]).status();
            let deadline = Instant::now() + Duration::from_secs(20);
            while n.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = n.kill();
            let _ = n.wait();
        }
        for g in &self.cgroups {
            if let Some(parent) = g.parent() {
                let _ = fs::write(parent.join("cgroup.procs"), std::process::id().to_string());
            }
            // Depth-first: the container's systemd left its own groups below ours.
            let mut dirs: Vec<PathBuf> = Vec::new();
            collect_dirs(g, &mut dirs);
            dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
            for d in dirs {
                let _ = fs::remove_dir(&d);
            }
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Whether a test of an installed lookout must skip itself (and says so): under qemu-user the
/// installed unit execs `/usr/bin/mender-monitord`, an ARM binary the container cannot run
/// without binfmt_misc.
pub fn installed_unit_cannot_run() -> bool {
    let Some(r) = super::runner() else { return false };
    eprintln!("skipped under {r:?}: the installed unit execs /usr/bin/mender-monitord, which without binfmt_misc cannot run an ARM binary");
    true
}

/// The binary as the container sees it (bound at /opt/lookout), through the runner if any (the
/// container shares the host's /usr, where qemu-user lives).
pub fn lookout_inside() -> Vec<String> {
    let name = bin().file_name().unwrap().to_string_lossy().into_owned();
    runner().into_iter().chain([format!("/opt/lookout/{name}")]).collect()
}

fn collect_dirs(d: &Path, out: &mut Vec<PathBuf>) {
    out.push(d.to_path_buf());
    if let Ok(rd) = fs::read_dir(d) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                collect_dirs(&e.path(), out);
            }
        }
    }
}
