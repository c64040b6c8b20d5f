//! Which process owns a `running` run, written so that another process can later tell for
//! certain that the owner is gone, and only then mark the run `failed`.
//!
//! On Linux an owner is `linux/<hostname>/<boot id>/<pid>/<start time>`: a reboot changes the
//! boot id, and a pid reused by a later process (a restarted container's pid 1, say) has a
//! different start time. An owner on another host (a database file shared between hosts,
//! which SQLite does not support anyway) or written where `/proc` is missing is never judged
//! gone: a wrong "gone" would report a live run as failed, a wrong "alive" only delays that.

use std::sync::OnceLock;

const LINUX: &str = "linux";

/// This process, as stored in `runs.owner`.
pub fn current() -> &'static str {
    static CURRENT: OnceLock<String> = OnceLock::new();
    CURRENT.get_or_init(|| {
        let pid = std::process::id();
        match (hostname(), boot_id(), start_time(pid)) {
            (Some(host), Some(boot), Some(start)) => format!("{LINUX}/{host}/{boot}/{pid}/{start}"),
            _ => format!("pid/{pid}"),
        }
    })
}

/// What can be known about the process that wrote an owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Liveness {
    /// Running now, on this host.
    Alive,
    /// Certainly ended.
    Gone,
    /// Another host's, or written without `/proc`: neither can be told.
    Unknown,
}

fn liveness(owner: &str) -> Liveness {
    let parts: Vec<&str> = owner.split('/').collect();
    let [LINUX, host, boot, pid, start] = parts[..] else { return Liveness::Unknown };
    if hostname().as_deref() != Some(host) {
        return Liveness::Unknown;
    }
    let Some(our_boot) = boot_id() else { return Liveness::Unknown };
    if our_boot != boot {
        return Liveness::Gone;
    }
    let Ok(pid) = pid.parse::<u32>() else { return Liveness::Unknown };
    match start_time(pid) {
        Some(now_start) if now_start == start => Liveness::Alive,
        Some(_) => Liveness::Gone,
        // /proc answered for the boot id, so a missing process entry is a real absence.
        None => Liveness::Gone,
    }
}

/// Whether the process that wrote `owner` has certainly ended.
pub fn is_gone(owner: &str) -> bool {
    liveness(owner) == Liveness::Gone
}

/// Whether the process that wrote `owner` is certainly running, on this host. An owner on
/// another host is never judged alive: a wrong "alive" would block its source for ever.
pub fn is_alive_here(owner: &str) -> bool {
    liveness(owner) == Liveness::Alive
}

/// Whether this process cannot tell if `owner` lives (another host, or no `/proc`): the
/// run's heartbeat decides instead.
pub fn is_unknown(owner: &str) -> bool {
    liveness(owner) == Liveness::Unknown
}

fn read_trimmed(path: &str) -> Option<String> {
    std::fs::read_to_string(path).ok().map(|s| s.trim().to_owned()).filter(|s| !s.is_empty() && !s.contains('/'))
}

fn hostname() -> Option<String> {
    read_trimmed("/proc/sys/kernel/hostname")
}

fn boot_id() -> Option<String> {
    read_trimmed("/proc/sys/kernel/random/boot_id")
}

/// Field 22 of `/proc/<pid>/stat`: when the process started, in clock ticks after boot.
/// The command name (field 2) may hold spaces and parentheses, so fields are counted from
/// the last `)`.
fn start_time(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(19).map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_finished_child_is_gone() {
        assert!(!is_gone(current()));
        if !current().starts_with(LINUX) {
            return; // no /proc: nothing is ever judged gone
        }
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let child_owner = {
            let ours: Vec<&str> = current().split('/').collect();
            // The child's start time while it may still run; after it is reaped the pid is free.
            let start = start_time(child.id()).unwrap_or_else(|| "0".into());
            format!("{}/{}/{}/{}/{start}", ours[0], ours[1], ours[2], child.id())
        };
        child.wait().unwrap();
        assert!(is_gone(&child_owner));
        assert!(!is_alive_here(&child_owner));
        assert!(is_alive_here(current()));
        assert!(!is_alive_here("linux/another-host/b/1/1") && !is_alive_here("pid/1"));
    }

    #[test]
    fn a_reused_pid_a_reboot_or_an_unknown_owner_are_judged_correctly() {
        if !current().starts_with(LINUX) {
            return;
        }
        let ours: Vec<&str> = current().split('/').collect();
        let (host, boot, pid, start) = (ours[1], ours[2], ours[3], ours[4]);
        assert!(is_gone(&format!("linux/{host}/{boot}/{pid}/1{start}")), "same pid, other start time");
        assert!(is_gone(&format!("linux/{host}/00000000-0000-0000-0000-000000000000/{pid}/{start}")), "rebooted");
        assert!(!is_gone(&format!("linux/another-host/{boot}/4242/1")), "another host is never judged");
        assert!(!is_gone("pid/4242"), "no /proc facts: never judged");
        assert!(!is_gone("garbage"));
    }
}
