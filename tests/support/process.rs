//! What a child process costs, read from `/proc` while it runs: peak
//! resident memory (`VmHWM`) and CPU time (`utime + stime`). The CPU time
//! is read once more when the process has exited but is not reaped yet (a
//! zombie keeps its accumulated times), so nothing after the last sample is
//! lost.

use std::path::Path;
use std::process::{Child, ExitStatus};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// One look at `/proc/<pid>`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProcSample {
    /// The state letter of `/proc/<pid>/stat` (`R`, `S`, `Z`, ...).
    pub state: char,
    /// User plus system CPU time of every thread, in clock ticks.
    pub cpu_ticks: u64,
    /// Peak resident set size so far (kB); absent once the process exited.
    pub hwm_kib: Option<u64>,
    /// Current resident set size (kB); absent once the process exited.
    pub rss_kib: Option<u64>,
}

impl ProcSample {
    pub fn cpu(&self) -> Duration {
        Duration::from_secs_f64(self.cpu_ticks as f64 / clock_ticks_per_second() as f64)
    }
}

/// `sysconf(_SC_CLK_TCK)`, asked of `getconf` (100 on every Linux this runs on).
pub fn clock_ticks_per_second() -> u64 {
    static TICKS: OnceLock<u64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .filter(|t| *t > 0)
            .unwrap_or(100)
    })
}

/// Reads `/proc/<pid>/stat` and `/proc/<pid>/status`; `None` when the
/// process is gone (reaped).
pub fn sample(pid: u32) -> Option<ProcSample> {
    let proc_dir = Path::new("/proc").join(pid.to_string());
    let stat = std::fs::read_to_string(proc_dir.join("stat")).ok()?;
    // `pid (comm) state ...`: comm may hold spaces and parentheses, so split after the last ')'
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is field 3 (state); utime and stime are fields 14 and 15
    let state = fields.first()?.chars().next()?;
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    let status = std::fs::read_to_string(proc_dir.join("status")).unwrap_or_default();
    let kib = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    };
    Some(ProcSample {
        state,
        cpu_ticks: utime + stime,
        hwm_kib: kib("VmHWM:"),
        rss_kib: kib("VmRSS:"),
    })
}

/// How a watched child ended and what it cost.
#[derive(Clone, Copy, Debug)]
pub struct Watched {
    /// `None` when it was killed for running past the deadline.
    pub status: Option<ExitStatus>,
    pub wall: Duration,
    pub cpu: Duration,
    pub peak_rss_kib: u64,
}

/// Waits for `child` (started at `started`), sampling it every 10 ms; past
/// `deadline` it is killed.
pub fn watch(child: &mut Child, started: Instant, deadline: Option<Duration>) -> Watched {
    let pid = child.id();
    let mut peak = 0u64;
    let mut cpu_ticks = 0u64;
    // until the process has exited (a zombie, times still readable) or is gone
    while let Some(s) = sample(pid) {
        peak = peak.max(s.hwm_kib.unwrap_or(0));
        cpu_ticks = cpu_ticks.max(s.cpu_ticks);
        if s.state == 'Z' || s.state == 'X' {
            break;
        }
        if deadline.is_some_and(|d| started.elapsed() > d) {
            let _ = child.kill();
            let _ = child.wait();
            return Watched {
                status: None,
                wall: started.elapsed(),
                cpu: ProcSample {
                    cpu_ticks,
                    ..ProcSample::default()
                }
                .cpu(),
                peak_rss_kib: peak,
            };
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let wall = started.elapsed();
    let status = child.wait().ok();
    Watched {
        status,
        wall,
        cpu: ProcSample {
            cpu_ticks,
            ..ProcSample::default()
        }
        .cpu(),
        peak_rss_kib: peak,
    }
}

/// Sends SIGINT (Ctrl-C) to a process by running `kill -INT`, so that it
/// shuts down cleanly (the simulator saves its state); no `unsafe` needed.
pub fn interrupt(pid: u32) -> bool {
    std::process::Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .is_ok_and(|s| s.success())
}
