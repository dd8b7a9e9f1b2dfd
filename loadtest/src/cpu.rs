//! CPU time from /proc: a server's (the process and every descendant, so a multi-process
//! server such as Dovecot counts whole) and this client's own.
//!
//! For each live process of the tree we add utime + stime + cutime + cstime: a child that
//! exits between two samples moves its time into its parent's cutime/cstime once reaped, so the
//! difference of two samples is the tree's CPU time in between.

use std::collections::HashMap;
use std::io;

/// One line of /proc/PID/stat, the fields we use.
#[derive(Debug, Clone, Copy)]
struct Stat {
    parent: u32,
    /// utime + stime + cutime + cstime, in clock ticks.
    ticks: u64,
    /// utime + stime only.
    own_ticks: u64,
}

fn parse_stat(text: &str) -> Option<Stat> {
    // The command name is in parentheses and may hold spaces or parentheses: fields resume
    // after the last ')'. Then: state(3) ppid(4) … utime(14) stime(15) cutime(16) cstime(17).
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_ascii_whitespace().collect();
    let field = |number: usize| fields.get(number - 3).and_then(|value| value.parse::<u64>().ok());
    let own_ticks = field(14)? + field(15)?;
    let children = field(16)? + field(17)?;
    Some(Stat { parent: u32::try_from(field(4)?).ok()?, ticks: own_ticks + children, own_ticks })
}

fn read_stat(pid: &str) -> Option<Stat> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

#[allow(clippy::cast_precision_loss)] // tick counts stay far below 2^52
fn seconds(ticks: u64) -> f64 {
    ticks as f64 / rustix::param::clock_ticks_per_second() as f64
}

/// CPU seconds used so far by `roots` and all their descendants (see the module comment).
pub fn tree_cpu_seconds(roots: &[u32]) -> io::Result<f64> {
    let mut processes: HashMap<u32, Stat> = HashMap::new();
    for entry in std::fs::read_dir("/proc")? {
        let name = entry?.file_name();
        let Some(name) = name.to_str() else { continue };
        let Ok(pid) = name.parse::<u32>() else { continue };
        if let Some(stat) = read_stat(name) {
            processes.insert(pid, stat);
        }
    }
    for root in roots {
        if !processes.contains_key(root) {
            return Err(io::Error::new(io::ErrorKind::NotFound, format!("no process {root}")));
        }
    }
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for (pid, stat) in &processes {
        children.entry(stat.parent).or_default().push(*pid);
    }
    let mut pending: Vec<u32> = roots.to_vec();
    let mut visited = std::collections::HashSet::new();
    let mut ticks = 0;
    while let Some(pid) = pending.pop() {
        if !visited.insert(pid) {
            continue;
        }
        ticks += processes.get(&pid).map_or(0, |stat| stat.ticks);
        pending.extend(children.get(&pid).into_iter().flatten().copied());
    }
    Ok(seconds(ticks))
}

/// CPU seconds this process (the load generator) used so far.
pub fn own_cpu_seconds() -> f64 {
    read_stat("self").map_or(0.0, |stat| seconds(stat.own_ticks))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_with_spaces_and_parentheses() {
        let line = "1234 (a (b) c) S 77 1234 1234 0 -1 4194560 100 0 0 0 250 50 7 3 20 0 1 0 10 0 0";
        let stat = parse_stat(line).unwrap();
        assert_eq!(stat.parent, 77);
        assert_eq!(stat.own_ticks, 300);
        assert_eq!(stat.ticks, 310);
    }

    #[test]
    fn this_process_has_a_cpu_time() {
        let mut spin = 0u64;
        for value in 0..2_000_000u64 {
            spin = spin.wrapping_add(value * value);
        }
        assert!(spin > 0);
        assert!(tree_cpu_seconds(&[std::process::id()]).unwrap() >= 0.0);
        assert!(own_cpu_seconds() >= 0.0);
        assert!(tree_cpu_seconds(&[u32::MAX]).is_err());
    }
}
