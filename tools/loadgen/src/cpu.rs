//! Which process takes which share of the machine's cores while a benchmark
//! runs (issue #14): two snapshots of /proc, the CPU ticks each group of
//! processes used between them, as a share of all the cores' ticks. On a
//! 2-core machine the load generator, PostgreSQL, RabbitMQ and Redis all
//! compete with the server, so a rate without its core shares cannot say
//! whether the server or the machine ran out.

use std::collections::HashMap;

/// The groups, in column order.
pub const GROUPS: [&str; 7] = [
    "chat",
    "postgres (bench DBs)",
    "postgres (other)",
    "beam.smp",
    "redis-server",
    "load generator",
    "rest of the machine",
];

/// What to count as which group.
#[derive(Debug, Clone, Default)]
pub struct Selector {
    /// The `chat up` server's pid.
    pub chat: Option<u32>,
    /// PostgreSQL backends whose process title names one of these databases
    /// count as the benchmark's; the other `postgres` processes apart.
    pub pg_databases: Vec<String>,
    /// The load generator: these pids (with their threads) ...
    pub load_pids: Vec<u32>,
    /// ... and every process with one of these command names (e.g. `wrk`).
    pub load_comms: Vec<String>,
}

/// CPU ticks per process and of the whole machine at one instant.
pub struct Snapshot {
    /// (pid, start time) → (group index, utime + stime ticks). The start
    /// time tells a reused pid from the process that had it before (pids
    /// wrap at 32768 here, within seconds while the machine compiles).
    processes: HashMap<(u32, u64), (usize, u64)>,
    /// All cores' ticks (busy and idle) since boot, from /proc/stat.
    machine_total: u64,
    /// All cores' busy ticks since boot.
    machine_busy: u64,
}

/// Shares of all the cores (1.0 = every core busy) per group, plus idle.
#[derive(Debug, Clone)]
pub struct Shares {
    pub groups: [f64; GROUPS.len()],
    pub idle: f64,
}

impl Selector {
    /// Reads /proc now.
    pub fn snapshot(&self) -> Snapshot {
        let (machine_total, machine_busy) = machine_ticks();
        let mut processes = HashMap::new();
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return Snapshot {
                processes,
                machine_total,
                machine_busy,
            };
        };
        for entry in entries.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            // A process may exit between the listing and the read: skip it.
            let Some((comm, started, ticks)) = process_ticks(pid) else {
                continue;
            };
            if let Some(group) = self.group_of(pid, &comm) {
                processes.insert((pid, started), (group, ticks));
            }
        }
        Snapshot {
            processes,
            machine_total,
            machine_busy,
        }
    }

    fn group_of(&self, pid: u32, comm: &str) -> Option<usize> {
        if self.chat == Some(pid) {
            return Some(0);
        }
        if self.load_pids.contains(&pid) || self.load_comms.iter().any(|c| c == comm) {
            return Some(5);
        }
        match comm {
            "postgres" => {
                let title = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                let title = String::from_utf8_lossy(&title);
                // A backend's title is "postgres: [CLUSTER: ]USER DATABASE
                // ADDRESS STATE" (Debian names the cluster, e.g. "15/main:").
                let ours = title
                    .split(|c: char| c.is_whitespace() || c == '\0')
                    .skip(1)
                    .any(|word| self.pg_databases.iter().any(|d| d == word));
                Some(if ours { 1 } else { 2 })
            }
            "beam.smp" => Some(3),
            "redis-server" => Some(4),
            _ => None,
        }
    }
}

impl Snapshot {
    /// This snapshot, plus the last ticks seen in `earlier` of every process
    /// that has exited since (its parent reaped it, so /proc forgets it):
    /// sampling often keeps what a process that ends inside the window used.
    pub fn keeping_exited(mut self, earlier: Snapshot) -> Snapshot {
        for (process, seen) in earlier.processes {
            self.processes.entry(process).or_insert(seen);
        }
        self
    }

    /// The shares used from `self` to `later`. A process that appeared in
    /// between counts from zero (it started inside the window).
    pub fn shares_until(&self, later: &Snapshot) -> Shares {
        let total = later
            .machine_total
            .saturating_sub(self.machine_total)
            .max(1) as f64;
        let busy = later.machine_busy.saturating_sub(self.machine_busy) as f64;
        let mut groups = [0.0; GROUPS.len()];
        for (process, &(group, ticks)) in &later.processes {
            let before = self.processes.get(process).map_or(0, |&(_, t)| t);
            groups[group] += ticks.saturating_sub(before) as f64 / total;
        }
        let known: f64 = groups.iter().sum();
        groups[GROUPS.len() - 1] = (busy / total - known).max(0.0);
        Shares {
            groups,
            idle: (1.0 - busy / total).max(0.0),
        }
    }
}

impl Shares {
    /// Markdown header cells (without the leading `|`), e.g. for a table
    /// whose first columns are the caller's.
    pub fn header() -> String {
        let mut cells: Vec<String> = GROUPS.iter().map(|g| format!(" {g} % ")).collect();
        cells.push(" idle % ".into());
        format!("{}|", cells.join("|"))
    }

    /// The alignment row's cells matching `header`.
    pub fn alignment() -> String {
        "---:|".repeat(GROUPS.len() + 1)
    }

    /// This sample's cells: percent of all the cores (200% would be two
    /// cores; here 100% = every core), one decimal.
    pub fn cells(&self) -> String {
        let mut cells: Vec<String> = self
            .groups
            .iter()
            .map(|g| format!(" {:.1} ", g * 100.0))
            .collect();
        cells.push(format!(" {:.1} ", self.idle * 100.0));
        format!("{}|", cells.join("|"))
    }
}

/// (command name, start time, utime + stime) of a process, from /proc/PID/stat.
fn process_ticks(pid: u32) -> Option<(String, u64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces: split after it.
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat.get(open + 1..close)?.to_owned();
    let fields: Vec<&str> = stat.get(close + 2..)?.split_whitespace().collect();
    // Fields after the name start at field 3 (state): utime is 14, stime
    // 15, starttime 22.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    let started: u64 = fields.get(19)?.parse().ok()?;
    Some((comm, started, utime + stime))
}

/// (all ticks, busy ticks) of every core since boot.
fn machine_ticks() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) else {
        return (0, 0);
    };
    let values: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest is inside user).
    let total: u64 = values.iter().take(8).sum();
    let idle = values.get(3).copied().unwrap_or(0) + values.get(4).copied().unwrap_or(0);
    (total, total.saturating_sub(idle))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_found_and_its_busy_loop_counted() {
        let selector = Selector {
            load_pids: vec![std::process::id()],
            ..Selector::default()
        };
        let before = selector.snapshot();
        let until = std::time::Instant::now() + std::time::Duration::from_millis(300);
        let mut spin = 0u64;
        while std::time::Instant::now() < until {
            spin = spin.wrapping_add(1);
        }
        std::hint::black_box(spin);
        let shares = before.shares_until(&selector.snapshot());
        assert!(shares.groups[5] > 0.0, "{shares:?}");
        let sum: f64 = shares.groups.iter().sum::<f64>() + shares.idle;
        assert!((sum - 1.0).abs() < 0.05, "{shares:?}");
    }
}
