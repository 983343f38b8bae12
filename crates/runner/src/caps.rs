//! Probing what this host offers (cgroup v2 delegation, `prlimit`, `nice`, `kill`) and the
//! per-task cgroup.

use std::fmt::Write as _;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::spec::Limits;

/// `PATH` given to tasks, and searched for the helper tools.
pub(crate) const TASK_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// `cpu.max` period in microseconds.
const CPU_PERIOD_US: u64 = 100_000;

/// How to probe. `Default` = the real `/sys/fs/cgroup`, cgroup allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeOptions {
    /// Root of the cgroup v2 (unified) hierarchy.
    pub cgroup_root: PathBuf,
    /// Use cgroup v2 if it is available. `false` forces the `prlimit` / `nice` fallback.
    pub allow_cgroup: bool,
    /// Write script files to a private directory on `/dev/shm` (tmpfs) when there is one, so
    /// scripts — which may hold rendered secret values — never reach a disk, and creating and
    /// removing thousands of them is cheap (on ext4, 1,000 concurrent create/delete pairs in one
    /// directory cost ~3 ms of kernel time each). `false`: always `base_dir`.
    pub memory_scripts: bool,
}

impl Default for ProbeOptions {
    fn default() -> Self {
        Self {
            cgroup_root: PathBuf::from("/sys/fs/cgroup"),
            allow_cgroup: true,
            memory_scripts: true,
        }
    }
}

/// `/dev/shm` when it is a tmpfs mount (read from `/proc/self/mounts`).
fn shm_dir() -> Option<PathBuf> {
    let mounts = fs::read_to_string("/proc/self/mounts").ok()?;
    mounts
        .lines()
        .any(|l| {
            let mut f = l.split_whitespace();
            let _dev = f.next();
            f.next() == Some("/dev/shm") && f.next() == Some("tmpfs")
        })
        .then(|| PathBuf::from("/dev/shm"))
}

/// A fresh private (0700, random name) directory on tmpfs for script files, removed when the
/// last clone of the runner is dropped.
fn memory_script_dir() -> Option<tempfile::TempDir> {
    let shm = shm_dir()?;
    tempfile::Builder::new()
        .prefix("ballast-scripts-")
        .permissions(fs::Permissions::from_mode(0o700))
        .tempdir_in(shm)
        .ok()
}

/// What the probe found. Serializable so the agent can report it to the server.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
pub struct Capabilities {
    /// Parent cgroup for task cgroups (`<root>/ballast`) with `memory` and `cpu` enabled for
    /// its children; `None` if cgroup v2 is not usable.
    pub cgroup_parent: Option<PathBuf>,
    /// `prlimit` (util-linux), if found.
    pub prlimit: Option<PathBuf>,
    /// `nice` (coreutils), if found.
    pub nice: Option<PathBuf>,
    /// `kill` (procps / util-linux), used to signal the whole process group.
    pub kill: Option<PathBuf>,
    /// `sh`, used for the cgroup-joining wrapper.
    pub sh: Option<PathBuf>,
    /// Why cgroup v2 is not used, when it is not.
    pub cgroup_unavailable_reason: Option<String>,
}

/// Runs tasks on this host. Probe once, then call [`Runner::run`] for each task (concurrent runs
/// are fine: each gets its own script file, process group and cgroup).
#[derive(Debug, Clone)]
pub struct Runner {
    pub(crate) base_dir: PathBuf,
    pub(crate) caps: Capabilities,
    pub(crate) spawners: crate::spawn::NiceSpawners,
    /// Where script files are written when not in `base_dir` (see
    /// [`ProbeOptions::memory_scripts`]).
    pub(crate) memory_dir: Option<std::sync::Arc<tempfile::TempDir>>,
    /// Interpreters found in [`TASK_PATH`] (by program name), resolved once.
    pub(crate) programs:
        std::sync::Arc<std::sync::Mutex<std::collections::HashMap<&'static str, PathBuf>>>,
}

impl Runner {
    /// Probe this host with the default options. `base_dir` is where the temporary script files
    /// go; it is created (mode 0700) on the first run. Never fails: what is missing is recorded
    /// and the corresponding caps are reported as not applied.
    #[must_use]
    pub fn probe(base_dir: &Path) -> Runner {
        Self::probe_with(base_dir, &ProbeOptions::default())
    }

    /// Probe with explicit options (e.g. to force the fallback path).
    #[must_use]
    pub fn probe_with(base_dir: &Path, opts: &ProbeOptions) -> Runner {
        let (cgroup_parent, cgroup_unavailable_reason) = if opts.allow_cgroup {
            match prepare_cgroup_parent(&opts.cgroup_root) {
                Ok(p) => (Some(p), None),
                Err(reason) => (None, Some(reason)),
            }
        } else {
            (None, Some("cgroup disabled by configuration".to_owned()))
        };
        let caps = Capabilities {
            cgroup_parent,
            prlimit: find_tool("prlimit"),
            nice: find_tool("nice"),
            kill: find_tool("kill"),
            sh: find_tool("sh"),
            cgroup_unavailable_reason,
        };
        tracing::debug!(?caps, "runner probe");
        Runner {
            base_dir: base_dir.to_path_buf(),
            caps,
            spawners: crate::spawn::NiceSpawners::default(),
            memory_dir: if opts.memory_scripts {
                memory_script_dir().map(std::sync::Arc::new)
            } else {
                None
            },
            programs: std::sync::Arc::default(),
        }
    }

    /// What the probe found.
    #[must_use]
    pub fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    /// The absolute path of an interpreter in [`TASK_PATH`] (the bare name if it is not found,
    /// so the spawn error names it). Absolute matters beyond tidiness: with a bare name and the
    /// task's own `PATH`, the standard library cannot use `posix_spawn` and forks the whole
    /// process instead — page tables copied for every task, several milliseconds of kernel time
    /// per task at 1,000 concurrent tasks.
    pub(crate) fn program_path(&self, program: &'static str) -> PathBuf {
        let mut programs = self.programs.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = programs.get(program) {
            return p.clone();
        }
        match find_tool(program) {
            Some(p) => {
                programs.insert(program, p.clone());
                p
            }
            None => PathBuf::from(program),
        }
    }

    /// Where script files are written: a private directory on tmpfs when available (see
    /// [`ProbeOptions::memory_scripts`]), otherwise [`Runner::base_dir`].
    #[must_use]
    pub fn script_dir(&self) -> &Path {
        self.memory_dir
            .as_deref()
            .map_or(self.base_dir.as_path(), tempfile::TempDir::path)
    }

    /// The working directory of tasks (and where script files go without tmpfs).
    #[must_use]
    pub fn base_dir(&self) -> &Path {
        &self.base_dir
    }
}

/// An executable file named `name` in one of the [`TASK_PATH`] directories.
pub(crate) fn find_tool(name: &str) -> Option<PathBuf> {
    TASK_PATH
        .split(':')
        .map(|d| Path::new(d).join(name))
        .find(|p| fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0))
}

fn has_words(text: &str, words: &[&str]) -> bool {
    words
        .iter()
        .all(|w| text.split_whitespace().any(|t| t == *w))
}

/// Make `<root>/ballast` a parent whose children get the `memory` and `cpu` controllers.
/// Returns the parent, or why that is impossible here.
fn prepare_cgroup_parent(root: &Path) -> Result<PathBuf, String> {
    let controllers = fs::read_to_string(root.join("cgroup.controllers"))
        .map_err(|e| format!("no cgroup v2 at {}: {e}", root.display()))?;
    if !has_words(&controllers, &["memory", "cpu"]) {
        return Err(format!(
            "cgroup v2 at {} lacks the memory/cpu controllers (have: {})",
            root.display(),
            controllers.trim()
        ));
    }
    enable_controllers(root)?;
    let parent = root.join("ballast");
    match fs::create_dir(&parent) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(format!("cannot create {}: {e}", parent.display())),
    }
    enable_controllers(&parent)?;
    Ok(parent)
}

fn enable_controllers(dir: &Path) -> Result<(), String> {
    let file = dir.join("cgroup.subtree_control");
    let current = fs::read_to_string(&file).unwrap_or_default();
    if has_words(&current, &["memory", "cpu"]) {
        return Ok(());
    }
    fs::write(&file, "+memory +cpu")
        .map_err(|e| format!("cannot enable memory/cpu in {}: {e}", file.display()))?;
    let after = fs::read_to_string(&file).unwrap_or_default();
    if has_words(&after, &["memory", "cpu"]) {
        Ok(())
    } else {
        Err(format!("memory/cpu not enabled in {}", file.display()))
    }
}

/// One task's cgroup, `<parent>/<task id>`.
#[derive(Debug)]
pub(crate) struct TaskCgroup {
    pub(crate) dir: PathBuf,
}

impl TaskCgroup {
    /// Create the cgroup and write the limits. On any failure the directory is removed again and
    /// the reason returned; the caller then falls back. `detail` receives what was set.
    pub(crate) fn create(
        parent: &Path,
        id: &str,
        limits: &Limits,
        detail: &mut Vec<String>,
    ) -> Result<TaskCgroup, String> {
        let dir = parent.join(id);
        fs::create_dir(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let cg = TaskCgroup { dir };
        let mut set = format!("cgroup {}", cg.dir.display());
        if let Some(bytes) = limits.memory_bytes {
            if let Err(e) = fs::write(cg.dir.join("memory.max"), bytes.to_string()) {
                cg.remove_now();
                return Err(format!("cannot set memory.max: {e}"));
            }
            let _ = write!(set, " memory.max={bytes}");
            // Without this the cap could be dodged by swapping; the file is absent without swap.
            let swap = cg.dir.join("memory.swap.max");
            if swap.exists() && fs::write(&swap, "0").is_ok() {
                set.push_str(" memory.swap.max=0");
            }
        }
        if let Some(pct) = limits.cpu_percent {
            let quota = (u64::from(pct) * CPU_PERIOD_US / 100).max(1000);
            if let Err(e) = fs::write(cg.dir.join("cpu.max"), format!("{quota} {CPU_PERIOD_US}")) {
                cg.remove_now();
                return Err(format!("cannot set cpu.max: {e}"));
            }
            let _ = write!(set, " cpu.max={quota}/{CPU_PERIOD_US}");
        }
        detail.push(set);
        Ok(cg)
    }

    fn remove_now(&self) {
        let _ = fs::remove_dir(&self.dir);
    }

    /// Best effort, synchronous: kill what is left and remove the directory.
    fn kill_and_remove_now(&self) {
        let kill = self.dir.join("cgroup.kill");
        if kill.exists() {
            let _ = fs::write(&kill, "1");
        }
        self.remove_now();
    }

    /// Kill whatever is left in the cgroup (also processes that left the process group) and
    /// remove the directory, retrying briefly while the kernel tears processes down.
    pub(crate) async fn kill_and_remove(self) {
        let kill = self.dir.join("cgroup.kill");
        if kill.exists() {
            let _ = tokio::fs::write(&kill, "1").await;
        }
        for _ in 0..40 {
            match tokio::fs::remove_dir(&self.dir).await {
                Ok(()) => return,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
        tracing::warn!(dir = %self.dir.display(), "could not remove task cgroup");
    }
}

impl Drop for TaskCgroup {
    /// When the `run` future is dropped mid-task the cgroup is still torn down (if the kernel
    /// has not finished killing its processes yet, the empty directory may stay behind).
    fn drop(&mut self) {
        if self.dir.exists() {
            self.kill_and_remove_now();
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn finds_standard_tools() {
        assert!(find_tool("sh").is_some());
        assert!(find_tool("definitely-not-a-tool-xyz").is_none());
    }

    #[test]
    fn no_cgroup_v2_root_is_reported_with_a_reason() {
        let dir = tempfile::tempdir().unwrap();
        let r = Runner::probe_with(
            dir.path(),
            &ProbeOptions {
                cgroup_root: dir.path().join("nope"),
                ..ProbeOptions::default()
            },
        );
        assert!(r.capabilities().cgroup_parent.is_none());
        let reason = r.capabilities().cgroup_unavailable_reason.clone().unwrap();
        assert!(reason.contains("no cgroup v2"), "{reason}");
    }

    #[test]
    fn root_without_memory_controller_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("cgroup.controllers"), "hugetlb\n").unwrap();
        let err = prepare_cgroup_parent(dir.path()).unwrap_err();
        assert!(err.contains("lacks"), "{err}");
    }

    #[test]
    fn forced_fallback_is_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let r = Runner::probe_with(
            dir.path(),
            &ProbeOptions {
                allow_cgroup: false,
                ..ProbeOptions::default()
            },
        );
        assert!(r.capabilities().cgroup_parent.is_none());
        assert_eq!(
            r.capabilities().cgroup_unavailable_reason.as_deref(),
            Some("cgroup disabled by configuration")
        );
    }
}
