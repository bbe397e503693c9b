//! An app's process tree: the process the daemon spawned and everything it starts, stopped as
//! one.
//!
//! | | Unix | Windows |
//! |---|---|---|
//! | the tree | the child's own process group (`process_group(0)`: its pid is the group id) | a Job Object per app, `JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE` |
//! | joined | in the child before `exec`: no race | `AssignProcessToJobObject` right after spawn (see below) |
//! | [`terminate`](ProcessTree::terminate) | SIGTERM to the group | nothing: there is no polite signal for a console-less process |
//! | [`kill`](ProcessTree::kill) | SIGKILL to the group | `TerminateJobObject` |
//! | [`is_empty`](ProcessTree::is_empty) | `kill(-pgid, 0)` fails | the job has no active process |
//! | dropped | SIGKILL to the group, unless it was seen empty | the job handle closes, which kills what is left |
//! | the daemon dies without stopping it | the tree lives on | the OS closes the handle: the tree dies |
//!
//! What escapes: on Unix, a descendant that moves to another group or session (`setsid`, a
//! shell's job control); on Windows, a process the app starts in the moment between its spawn
//! and its assignment to the job (tokio cannot spawn suspended), and one started with
//! `CREATE_BREAKAWAY_FROM_JOB` (refused: the job does not allow breakaway).
//!
//! A group id is reserved while any member lives, so signalling the group after its leader was
//! reaped reaches only the app's processes — unless the group has emptied and the id been
//! reused as another group's in between, which is why every check that the group is empty is
//! remembered and ends all signalling.

#[cfg(unix)]
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::process::{Child, Command};
use tracing::debug;

/// One app's process tree. See the [module docs](self).
#[derive(Debug)]
pub(crate) struct ProcessTree {
    /// Set once the tree was seen empty: nothing may be signalled after that.
    empty: AtomicBool,
    #[cfg(unix)]
    pgid: libc::pid_t,
    #[cfg(windows)]
    job: Option<windows::Job>,
}

impl ProcessTree {
    /// Makes `command` start a new tree when spawned.
    pub(crate) fn prepare(command: &mut Command) {
        #[cfg(unix)]
        command.process_group(0);
        #[cfg(not(unix))]
        let _ = command;
    }

    /// The tree of `child`, just spawned from a [`prepare`](Self::prepare)d command.
    ///
    /// On Windows, if no job can be created or the child cannot join it, the tree is the child
    /// alone (logged); stopping it then ends only the child.
    pub(crate) fn of(child: &Child) -> ProcessTree {
        #[cfg(unix)]
        {
            let pgid = child.id().and_then(|pid| libc::pid_t::try_from(pid).ok()).unwrap_or(0);
            ProcessTree { empty: AtomicBool::new(pgid <= 0), pgid }
        }
        #[cfg(windows)]
        {
            let job = match windows::Job::for_child(child) {
                Ok(job) => Some(job),
                Err(e) => {
                    tracing::warn!(error = %e, "no job object: stopping the app stops only its process");
                    None
                }
            };
            ProcessTree { empty: AtomicBool::new(false), job }
        }
    }

    /// Asks every process of the tree to exit (SIGTERM on Unix; nothing on Windows).
    pub(crate) fn terminate(&self) {
        #[cfg(unix)]
        self.signal(libc::SIGTERM);
    }

    /// Ends every process of the tree now.
    pub(crate) fn kill(&self) {
        #[cfg(unix)]
        self.signal(libc::SIGKILL);
        #[cfg(windows)]
        if let Some(job) = &self.job
            && !self.empty.load(Ordering::SeqCst)
            && let Err(e) = job.terminate()
        {
            debug!(error = %e, "TerminateJobObject failed");
        }
    }

    /// True once no process of the tree is left (and from then on).
    pub(crate) fn is_empty(&self) -> bool {
        if self.empty.load(Ordering::SeqCst) {
            return true;
        }
        #[cfg(unix)]
        // SAFETY: kill(2) with signal 0 only checks for existence; plain integers, no memory.
        let empty = (unsafe { libc::kill(-self.pgid, 0) } != 0
            && io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH))
            || only_zombies_in(self.pgid);
        #[cfg(windows)]
        let empty = self.job.as_ref().is_none_or(|job| job.active_processes().unwrap_or(0) == 0);
        if empty {
            self.empty.store(true, Ordering::SeqCst);
        }
        empty
    }

    /// Waits until the tree is empty, or `until` passes. Returns whether it is empty.
    ///
    /// Neither platform tells a parent when its grandchildren exit, so this polls, with a
    /// back-off from 1 ms to 50 ms.
    pub(crate) async fn wait_empty(&self, until: tokio::time::Instant) -> bool {
        let mut pause = std::time::Duration::from_millis(1);
        loop {
            if self.is_empty() {
                return true;
            }
            if tokio::time::Instant::now() >= until {
                return false;
            }
            tokio::time::sleep_until(until.min(tokio::time::Instant::now() + pause)).await;
            pause = (pause * 2).min(std::time::Duration::from_millis(50));
        }
    }

    /// Whether `child` is in this tree's job (Windows).
    #[cfg(all(windows, test))]
    pub(crate) fn contains(&self, child: &Child) -> bool {
        self.job.as_ref().is_some_and(|job| job.contains(child))
    }

    #[cfg(unix)]
    fn signal(&self, signal: libc::c_int) {
        if self.is_empty() {
            return;
        }
        // SAFETY: kill(2) takes plain integers and has no memory-safety preconditions. The
        // group is not known to be empty, so its id is still reserved (module docs).
        let rc = unsafe { libc::kill(-self.pgid, signal) };
        if rc != 0 {
            debug!(pgid = self.pgid, signal, error = %io::Error::last_os_error(), "kill failed");
        }
    }
}

/// Whether every process of group `pgid` has exited and waits to be reaped (Linux; elsewhere
/// false). An orphan is reaped by init, or by nobody when init does not reap (some containers,
/// or a daemon that is itself pid 1): such a group is over, though `kill(-pgid, 0)` still
/// succeeds.
#[cfg(unix)]
fn only_zombies_in(pgid: libc::pid_t) -> bool {
    if !cfg!(target_os = "linux") {
        return false;
    }
    let Ok(entries) = std::fs::read_dir("/proc") else { return false };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.parse::<libc::pid_t>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        // `pid (comm) state ppid pgrp ...`; comm may hold anything, so parse after its `)`.
        let mut fields =
            stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("").split_whitespace();
        let (Some(state), Some(_ppid), Some(pgrp)) = (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        if pgrp.parse::<libc::pid_t>() == Ok(pgid) && state != "Z" && state != "X" {
            return false;
        }
    }
    true
}

impl Drop for ProcessTree {
    fn drop(&mut self) {
        // Whatever happens to the daemon's task (an abort, a runtime shut down without
        // `Daemon::shutdown`), the app's processes do not outlive their supervisor.
        #[cfg(unix)]
        self.kill();
        // Windows: dropping the job closes its handle, and KILL_ON_JOB_CLOSE does the rest.
    }
}

#[cfg(windows)]
mod windows {
    //! The Job Object calls, each behind a safe function.

    use std::io;
    use std::os::windows::io::{AsRawHandle, FromRawHandle, OwnedHandle};

    use tokio::process::Child;
    use windows_sys::Win32::Foundation::HANDLE;
    use windows_sys::Win32::System::JobObjects::{
        AssignProcessToJobObject, CreateJobObjectW, JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE,
        JOBOBJECT_BASIC_ACCOUNTING_INFORMATION, JOBOBJECT_EXTENDED_LIMIT_INFORMATION,
        JobObjectBasicAccountingInformation, JobObjectExtendedLimitInformation,
        QueryInformationJobObject, SetInformationJobObject, TerminateJobObject,
    };

    /// An owned job handle; closing it kills the processes still in the job.
    #[derive(Debug)]
    pub(super) struct Job(OwnedHandle);

    /// The exit code of processes ended by `TerminateJobObject`, as tokio's `Child::kill` uses.
    const KILLED: u32 = 1;

    impl Job {
        /// A new kill-on-close job with `child` in it.
        pub(super) fn for_child(child: &Child) -> io::Result<Job> {
            let process = child
                .raw_handle()
                .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "the app already exited"))?;
            // SAFETY: no security attributes and no name are valid arguments; the result is
            // checked before use.
            let raw = unsafe { CreateJobObjectW(std::ptr::null(), std::ptr::null()) };
            if raw.is_null() {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: `raw` is a fresh handle that nothing else owns.
            let job = Job(unsafe { OwnedHandle::from_raw_handle(raw) });
            // SAFETY: an all-zero JOBOBJECT_EXTENDED_LIMIT_INFORMATION is valid (no limits).
            let mut limits: JOBOBJECT_EXTENDED_LIMIT_INFORMATION = unsafe { std::mem::zeroed() };
            limits.BasicLimitInformation.LimitFlags = JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE;
            // SAFETY: the job handle is open; the pointer and size describe `limits`, which
            // outlives the call.
            let ok = unsafe {
                SetInformationJobObject(
                    job.handle(),
                    JobObjectExtendedLimitInformation,
                    (&raw const limits).cast(),
                    size_of_u32::<JOBOBJECT_EXTENDED_LIMIT_INFORMATION>(),
                )
            };
            if ok == 0 {
                return Err(io::Error::last_os_error());
            }
            // The child is already running (tokio cannot spawn suspended), so it joins the job
            // only now: a process it starts before this call escapes the job.
            // SAFETY: both handles are open: the job's is ours, the process's belongs to
            // `child`, which the caller holds.
            if unsafe { AssignProcessToJobObject(job.handle(), process as HANDLE) } == 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(job)
        }

        fn handle(&self) -> HANDLE {
            self.0.as_raw_handle() as HANDLE
        }

        pub(super) fn terminate(&self) -> io::Result<()> {
            // SAFETY: the job handle is open.
            if unsafe { TerminateJobObject(self.handle(), KILLED) } == 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        }

        pub(super) fn active_processes(&self) -> io::Result<u32> {
            // SAFETY: all-zero is a valid JOBOBJECT_BASIC_ACCOUNTING_INFORMATION.
            let mut info: JOBOBJECT_BASIC_ACCOUNTING_INFORMATION = unsafe { std::mem::zeroed() };
            // SAFETY: the job handle is open; the pointer and size describe `info`.
            let ok = unsafe {
                QueryInformationJobObject(
                    self.handle(),
                    JobObjectBasicAccountingInformation,
                    (&raw mut info).cast(),
                    size_of_u32::<JOBOBJECT_BASIC_ACCOUNTING_INFORMATION>(),
                    std::ptr::null_mut(),
                )
            };
            if ok == 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(info.ActiveProcesses)
        }

        #[cfg(test)]
        pub(super) fn contains(&self, child: &Child) -> bool {
            use windows_sys::Win32::System::JobObjects::IsProcessInJob;

            let Some(process) = child.raw_handle() else { return false };
            let mut result = 0;
            // SAFETY: both handles are open; `result` outlives the call.
            let ok = unsafe { IsProcessInJob(process as HANDLE, self.handle(), &mut result) };
            ok != 0 && result != 0
        }
    }

    fn size_of_u32<T>() -> u32 {
        u32::try_from(size_of::<T>()).unwrap_or(u32::MAX)
    }
}

#[cfg(all(test, windows))]
mod tests {
    use std::process::Stdio;
    use std::time::Duration;

    use super::*;

    const IDLE: &str = "BUNCTL_TREE_TEST_IDLE";

    /// Not a test: with [`IDLE`] set, this executable run as `EXE idle_when_asked --exact`
    /// waits forever, as a child to put in a job.
    #[test]
    fn idle_when_asked() {
        if std::env::var_os(IDLE).is_some() {
            loop {
                std::thread::park();
            }
        }
    }

    /// A spawned child is in its tree's job, and killing the tree ends it.
    #[tokio::test]
    async fn a_child_joins_its_job_and_killing_the_tree_ends_it() {
        let mut command = Command::new(std::env::current_exe().expect("exe"));
        command
            .args(["tree::tests::idle_when_asked", "--exact"])
            .env(IDLE, "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .kill_on_drop(true);
        ProcessTree::prepare(&mut command);
        let mut child = command.spawn().expect("spawn");
        let tree = ProcessTree::of(&child);
        assert!(tree.contains(&child), "the child is in the job");
        assert!(!tree.is_empty());
        tree.kill();
        let patience = Duration::from_secs(20);
        let status =
            tokio::time::timeout(patience, child.wait()).await.expect("ended").expect("wait");
        assert_eq!(status.code(), Some(1), "TerminateJobObject's exit code");
        assert!(tree.wait_empty(tokio::time::Instant::now() + patience).await);
    }
}
