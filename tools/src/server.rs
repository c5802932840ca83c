//! The servers as processes: starting one in its own process group (pinned to CPU 0), and
//! killing and reaping its whole tree; and what the harness does so that it can: raise its
//! open-files limit, become a subreaper, pin itself or its load to CPU 1.
//!
//! A server is any program that takes its listen address as its first argument and prints
//! `listening on ADDR` once bound. [`Server::start`] gives it `127.0.0.1:0`, so the kernel picks
//! a free port and two runs never collide, and reads the port back from that line. On a machine
//! with two CPUs and `taskset`, the server runs on CPU 0 and the load on CPU 1, so neither takes
//! the other's core.

use std::collections::VecDeque;
use std::io::{self, BufRead, BufReader};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, ChildStderr, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::procfs::TreeSample;

/// How long a server may take to print `listening on ADDR`.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a killed server's processes may take to disappear.
const KILL_TIMEOUT: Duration = Duration::from_secs(2);

/// A server process; dropping it kills the server and every process it started.
#[derive(Debug)]
pub struct Server {
    /// The server (`taskset` execs it, so this is the server itself). It leads its own process
    /// group, so the group id is its pid.
    child: Child,
    /// The last lines the server wrote to stderr, for the report when it dies.
    stderr: Arc<Mutex<VecDeque<String>>>,
    /// The thread that reads stderr; it ends when every process of the tree has closed it.
    stderr_reader: JoinHandle<()>,
}

impl Server {
    /// Starts `program` on a port of the kernel's choice; waits for `listening on ADDR`.
    pub fn start(program: &Path, pin: bool) -> std::result::Result<(Server, SocketAddr), String> {
        Server::start_with(program, pin, |_| {})
    }

    /// As [`Server::start`], with `more` adding to the command what the server needs besides
    /// its address (arguments after it, environment variables).
    pub fn start_with(
        program: &Path,
        pin: bool,
        more: impl FnOnce(&mut Command),
    ) -> std::result::Result<(Server, SocketAddr), String> {
        let mut command = pinned(pin, 0, program);
        command.arg("127.0.0.1:0");
        more(&mut command);
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group: one signal then reaches every process it forks.
            .process_group(0);
        let mut child = command
            .spawn()
            .map_err(|err| format!("could not start: {err}"))?;
        let addresses = watch_stdout(child.stdout.take().expect("stdout is piped"));
        let stderr = Arc::new(Mutex::new(VecDeque::new()));
        let stderr_reader = keep_tail(
            child.stderr.take().expect("stderr is piped"),
            stderr.clone(),
        );
        // Guard the process before waiting for it, so that every error below still kills it.
        let mut server = Server {
            child,
            stderr,
            stderr_reader,
        };
        match addresses.recv_timeout(LISTEN_TIMEOUT) {
            Ok(Ok(addr)) => Ok((server, addr)),
            Ok(Err(line)) => Err(format!("printed an address we cannot parse: {line:?}")),
            // Stdout closed without the line: the server has exited (or is about to).
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(server
                .exited_within(Duration::from_secs(1))
                .map_or("closed stdout before listening".into(), |status| {
                    format!("exited before listening ({status}){}", server.stderr_tail())
                })),
            Err(mpsc::RecvTimeoutError::Timeout) => Err(format!(
                "did not print `listening on ADDR` within {} s",
                LISTEN_TIMEOUT.as_secs()
            )),
        }
    }

    /// The server's pid, which is also its process group's id.
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Why the server is gone, if it is: its exit status and last words.
    pub fn death(&mut self) -> Option<String> {
        let status = self.child.try_wait().ok().flatten()?;
        Some(format!("the server died ({status}){}", self.stderr_tail()))
    }

    /// Waits up to `timeout` for the server to exit; its status if it did.
    fn exited_within(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// `; stderr: "..."` with the server's last stderr lines, or nothing if it said nothing.
    fn stderr_tail(&self) -> String {
        // An exited server's last lines may still be in the pipe: give the reader a moment.
        let deadline = Instant::now() + Duration::from_millis(200);
        while !self.stderr_reader.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        let lines = self.stderr.lock().expect("stderr lock");
        if lines.is_empty() {
            return String::new();
        }
        let joined: Vec<&str> = lines.iter().map(String::as_str).collect();
        format!("; stderr: {:?}", joined.join(" / "))
    }
}

impl Drop for Server {
    /// Kills the server's whole tree, reaps it, and waits until none of it is left.
    fn drop(&mut self) {
        let pid = self.pid();
        // A child that left the group (setsid) is still in the tree: signal both.
        let tree = TreeSample::take(pid).pids;
        send_kill(-pid);
        for member in tree {
            send_kill(member);
        }
        let _ = self.child.wait();
        if !reap_group(pid, KILL_TIMEOUT) {
            eprintln!("warning: processes of server group {pid} survived SIGKILL");
        }
    }
}

/// Reads the server's stdout on a thread: sends the address of `listening on ADDR` (or the line,
/// if the address does not parse), then keeps reading so that the server never blocks on a full
/// pipe. The channel closes if stdout ends first.
fn watch_stdout(stdout: ChildStdout) -> mpsc::Receiver<std::result::Result<SocketAddr, String>> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if let Some(addr) = line.strip_prefix("listening on ") {
                let _ = tx.send(addr.trim().parse().map_err(|_| line.clone()));
            }
        }
    });
    rx
}

/// Reads the server's stderr on a thread, keeping its last few lines in `tail`.
fn keep_tail(stderr: ChildStderr, tail: Arc<Mutex<VecDeque<String>>>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { return };
            let mut tail = tail.lock().expect("stderr lock");
            if tail.len() == 3 {
                tail.pop_front();
            }
            tail.push_back(line);
        }
    })
}

/// Sends SIGKILL to `pid` (or to the group `-pid`); a process already gone is not an error.
fn send_kill(pid: i32) {
    // SAFETY: `kill` only sends a signal; it touches no memory of ours. The pids are the
    // server's tree and group, which we started.
    unsafe { libc::kill(pid, libc::SIGKILL) };
}

/// Reaps the dead of process group `pgid` until none is left, for up to `timeout`; whether the
/// group is gone.
///
/// Orphans (the fork server's children, once it is killed) come to us, not to init, because
/// this process is a subreaper; reaping them is ours to do.
fn reap_group(pgid: i32, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        // SAFETY: a null status pointer is allowed; WNOHANG never blocks.
        while unsafe { libc::waitpid(-pgid, std::ptr::null_mut(), libc::WNOHANG) } > 0 {}
        // SAFETY: signal 0 only checks that the group exists; it touches no memory.
        let gone = unsafe { libc::kill(-pgid, 0) } == -1
            && io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH);
        if gone {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Reaps any child that is left over (one that left its group before it died).
pub fn reap_orphans() {
    // SAFETY: as in `reap_group`: a null status pointer, and WNOHANG never blocks.
    while unsafe { libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) } > 0 {}
}

/// A command that runs `program` on CPU `cpu` (under `taskset`) when `pin` is set, or as it is.
///
/// `taskset` execs the program, so the child's pid is the program's own, and the program's
/// threads and children inherit the CPU.
pub fn pinned(pin: bool, cpu: usize, program: &Path) -> Command {
    if pin {
        let mut taskset = Command::new("taskset");
        taskset.arg("-c").arg(cpu.to_string()).arg(program);
        taskset
    } else {
        Command::new(program)
    }
}

/// Whether servers and load can be pinned apart: `taskset` is on PATH and this process may run
/// on two CPUs or more.
pub fn can_pin() -> bool {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    cpus >= 2 && on_path("taskset")
}

/// This process's soft limit on open files.
///
/// A server started by the harness inherits it, so it bounds the connections a bench can open:
/// each takes a descriptor in the harness and one in the server.
pub fn open_files_limit() -> io::Result<u64> {
    Ok(rlimit_nofile()?.rlim_cur)
}

/// This process's limits on open files, soft and hard.
fn rlimit_nofile() -> io::Result<libc::rlimit> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid, writable rlimit for the call to fill.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(limit)
}

/// Raises the soft limit on open files to the hard limit; returns the new limit.
///
/// 5,000 connections need 5,000 descriptors here and as many in the server, which inherits this
/// process's limits when it is started.
pub fn raise_open_files_limit() -> io::Result<u64> {
    let mut limit = rlimit_nofile()?;
    limit.rlim_cur = limit.rlim_max;
    // SAFETY: `limit` is a valid rlimit, read by the call only.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(limit.rlim_cur)
}

/// Makes this process a subreaper: the orphans of a killed server become our children, so that
/// we can reap them rather than leave zombies to an init that may not.
pub fn become_subreaper() -> io::Result<()> {
    // SAFETY: PR_SET_CHILD_SUBREAPER takes an integer flag; no memory is passed.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Pins this process (the client) to CPU 1 if the server can be pinned to CPU 0 with
/// `taskset`; whether both are pinned.
pub fn pin_client() -> bool {
    if !can_pin() {
        return false;
    }
    // SAFETY: `cpu_set_t` is a plain bit mask, for which all zeros is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: CPU 1 is within the set's bits (`cpu_set_t` holds 1,024 CPUs).
    unsafe { libc::CPU_SET(1, &mut set) };
    // SAFETY: `set` is a valid cpu_set_t and the size passed is its own.
    unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0 }
}

/// Whether `program` is an executable on PATH.
pub fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}
