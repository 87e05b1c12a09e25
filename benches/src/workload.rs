//! The in-guest CPU workload of issue 5 and the host-side timing of marker
//! lines, shared by the `boot` benchmark and `tests/tests/guest_workload.rs`
//! (which includes this file with `#[path]`, so it uses only `std`).
//!
//! The workload is a shell script passed on the kernel command line as
//! `kagami.workload="..."`; the test guest's /init (scripts/guest/init) runs
//! it with `sh -c` after its `KAGAMI-MARKER` line. For every job the script
//! prints, each on a line of its own,
//!
//! ```text
//! KAGAMI-BEGIN <name> up=<guest uptime>
//! KAGAMI-RESULT <name> <sha256 hex> - up=<guest uptime>
//! ```
//!
//! so a harness gets the digest, the in-guest elapsed time (from
//! /proc/uptime, 10 ms resolution) and, from when the lines arrive, a
//! host-side time that is measured the same way for every emulator and for
//! the host itself. The same script runs natively under the guest's busybox
//! binary ([`host_command`]), which gives the digests to check against:
//! busybox's gzip output differs from GNU gzip's, so the host must use the
//! same busybox.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// One job of the workload: a pipeline whose output is a SHA-256 digest.
#[derive(Clone, Debug)]
pub struct Job {
    /// A short word naming the job in marker lines and tables.
    pub name: &'static str,
    /// A human-readable description for tables.
    pub title: String,
    /// The pipeline; it must print `sha256sum`'s output and contain no `"`.
    pub pipeline: String,
}

/// The issue's two jobs: `dd if=/dev/zero bs=1M count=<dd_mib> | sha256sum`
/// and `seq 1 <seq_n> | gzip -9 | sha256sum`.
pub fn jobs(dd_mib: u32, seq_n: u32) -> Vec<Job> {
    vec![
        Job {
            name: "zero",
            title: format!("dd if=/dev/zero bs=1M count={dd_mib} | sha256sum"),
            pipeline: format!("dd if=/dev/zero bs=1M count={dd_mib} 2>/dev/null | sha256sum"),
        },
        Job {
            name: "gzip",
            title: format!("seq 1 {seq_n} | gzip -9 | sha256sum"),
            pipeline: format!("seq 1 {seq_n} | gzip -9 | sha256sum"),
        },
    ]
}

/// The shell script running `jobs` with their marker lines. It has no
/// double quotes, so it fits in `kagami.workload="..."`.
pub fn script(jobs: &[Job]) -> String {
    let mut s = String::new();
    for j in jobs {
        assert!(
            !j.pipeline.contains('"') && !j.name.contains(' '),
            "job {} cannot be quoted",
            j.name
        );
        s.push_str(&format!(
            "read u _ </proc/uptime; echo KAGAMI-BEGIN {n} up=$u; d=$({p}); read u _ </proc/uptime; echo KAGAMI-RESULT {n} $d up=$u; ",
            n = j.name,
            p = j.pipeline
        ));
    }
    s.trim_end().to_string()
}

/// The kernel command-line word that makes /init run `script`.
pub fn append_word(script: &str) -> String {
    format!("kagami.workload=\"{script}\"")
}

/// A line the harness acts on.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// `KAGAMI-MARKER uptime=...`: userspace is up.
    Marker,
    /// A job starts; the guest's uptime in seconds.
    Begin { job: String, up: Option<f64> },
    /// A job's digest; the guest's uptime in seconds.
    Result { job: String, digest: String, up: Option<f64> },
    /// /init is about to power off.
    Poweroff,
}

/// The event a console line carries, if any. Only lines that start with a
/// marker count: the kernel echoes the command line, which contains the
/// marker words inside the workload text.
pub fn parse_line(line: &str) -> Option<Event> {
    let line = line.trim_matches(|c: char| c.is_whitespace() || c == '\0');
    let mut words = line.split_whitespace();
    let up = |w: Option<&str>| w.and_then(|w| w.strip_prefix("up=")).and_then(|v| v.parse::<f64>().ok());
    match words.next()? {
        "KAGAMI-MARKER" => Some(Event::Marker),
        "KAGAMI-POWEROFF" => Some(Event::Poweroff),
        "KAGAMI-BEGIN" => {
            let job = words.next()?.to_string();
            Some(Event::Begin { job, up: up(words.next()) })
        }
        "KAGAMI-RESULT" => {
            let job = words.next()?.to_string();
            let digest = words.next()?.to_string();
            // sha256sum prints "<hex>  -"; the shell made that "<hex> -".
            let rest: Vec<&str> = words.collect();
            let up = up(rest.iter().copied().find(|w| w.starts_with("up=")));
            Some(Event::Result { job, digest, up })
        }
        _ => None,
    }
}

/// What one run printed: every event with the host time since the process
/// started, and the whole output for error messages.
#[derive(Debug, Default)]
pub struct Timeline {
    pub events: Vec<(f64, Event)>,
    /// For each event, the CPU seconds the process (and the children it
    /// waited for) had used when the line arrived, from /proc/PID/stat:
    /// on a loaded host this grows with the work done, not with the load.
    pub cpu: Vec<Option<f64>>,
    pub output: String,
}

impl Timeline {
    /// Host seconds at the first event that matches.
    pub fn at(&self, f: impl Fn(&Event) -> bool) -> Option<f64> {
        self.events.iter().find(|(_, e)| f(e)).map(|(t, _)| *t)
    }

    pub fn marker(&self) -> Option<f64> {
        self.at(|e| *e == Event::Marker)
    }

    /// CPU seconds used up to the marker line.
    pub fn marker_cpu(&self) -> Option<f64> {
        let i = self.events.iter().position(|(_, e)| *e == Event::Marker)?;
        self.cpu[i]
    }

    fn cpu_of(&self, f: impl Fn(&Event) -> bool) -> Option<f64> {
        let i = self.events.iter().position(|(_, e)| f(e))?;
        self.cpu[i]
    }

    /// The job's begin and result events with their host times.
    fn job(&self, name: &str) -> Option<((f64, Option<f64>), (f64, String, Option<f64>))> {
        let begin = self.events.iter().find_map(|(t, e)| match e {
            Event::Begin { job, up } if job == name => Some((*t, *up)),
            _ => None,
        })?;
        let result = self.events.iter().find_map(|(t, e)| match e {
            Event::Result { job, digest, up } if job == name => Some((*t, digest.clone(), *up)),
            _ => None,
        })?;
        Some((begin, result))
    }

    /// The job's digest, host seconds from its begin line to its result
    /// line, and the guest's own elapsed seconds (uptime difference).
    pub fn job_result(&self, name: &str) -> Option<JobResult> {
        let ((t0, up0), (t1, digest, up1)) = self.job(name)?;
        let c0 = self.cpu_of(|e| matches!(e, Event::Begin { job, .. } if job == name));
        let c1 = self.cpu_of(|e| matches!(e, Event::Result { job, .. } if job == name));
        Some(JobResult {
            digest,
            host_secs: t1 - t0,
            cpu_secs: c0.zip(c1).map(|(a, b)| b - a),
            guest_secs: up0.zip(up1).map(|(a, b)| b - a),
        })
    }
}

/// One job's outcome in one run.
#[derive(Clone, Debug)]
pub struct JobResult {
    pub digest: String,
    pub host_secs: f64,
    /// CPU seconds the process used between the two lines.
    pub cpu_secs: Option<f64>,
    pub guest_secs: Option<f64>,
}

/// Start `cmd` with stdout piped and stdin and stderr closed, time every
/// marker line from the moment of the spawn, and stop the process when
/// `done` says the timeline is complete, when its output ends, or after
/// `timeout` (an error naming `what`). The process is killed in every case.
pub fn run_timed(what: &str, cmd: &mut Command, timeout: Duration, done: impl Fn(&Timeline) -> bool) -> Result<Timeline, String> {
    let t0 = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("{what}: cannot start: {e}"))?;
    let out = child.stdout.take().expect("stdout is piped");
    let pid = child.id();
    let (tx, rx) = mpsc::channel::<(Instant, Option<f64>, String)>();
    let reader = std::thread::spawn(move || {
        let mut r = BufReader::new(out);
        let mut line = Vec::new();
        loop {
            line.clear();
            match r.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let now = Instant::now();
                    if tx
                        .send((now, cpu_seconds(pid), String::from_utf8_lossy(&line).into_owned()))
                        .is_err()
                    {
                        break;
                    }
                }
            }
        }
    });
    let mut tl = Timeline::default();
    let result = loop {
        let left = timeout.saturating_sub(t0.elapsed());
        match rx.recv_timeout(left) {
            Ok((at, cpu, line)) => {
                if let Some(e) = parse_line(&line) {
                    tl.events.push(((at - t0).as_secs_f64(), e));
                    tl.cpu.push(cpu);
                }
                tl.output.push_str(&line);
                if done(&tl) {
                    break Ok(());
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break Err(format!("{what}: output ended early")),
            Err(mpsc::RecvTimeoutError::Timeout) => break Err(format!("{what}: not done within {} s", timeout.as_secs())),
        }
    };
    stop(&mut child);
    let _ = reader.join();
    match result {
        Ok(()) => Ok(tl),
        Err(e) => Err(format!("{e}; the last output:\n{}", tail(&tl.output, 3000))),
    }
}

/// utime + stime + cutime + cstime of process `pid` in seconds (fields 14
/// to 17 of /proc/PID/stat, in clock ticks of 1/100 s on Linux).
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest: Vec<&str> = stat.rsplit_once(") ")?.1.split_whitespace().collect();
    // rest[0] is field 3 (state), so field n is rest[n - 3].
    let ticks: u64 = rest.get(11..15)?.iter().map(|f| f.parse::<u64>().ok()).sum::<Option<u64>>()?;
    Some(ticks as f64 / 100.0)
}

fn stop(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

fn tail(s: &str, n: usize) -> &str {
    let mut at = s.len().saturating_sub(n);
    while !s.is_char_boundary(at) {
        at += 1;
    }
    &s[at..]
}

/// True once every job in `jobs` has its result line.
pub fn all_results(jobs: &[Job]) -> impl Fn(&Timeline) -> bool + '_ {
    move |tl| jobs.iter().all(|j| tl.job(j.name).is_some())
}

/// The busybox applets the script uses, linked into `dir` so that a
/// `PATH=dir` shell runs busybox's versions (never the host's GNU tools,
/// whose gzip output differs).
const APPLETS: &[&str] = &["sh", "dd", "sha256sum", "seq", "gzip", "echo", "cat"];

/// A command running `script` natively under `busybox sh` with only busybox
/// applets on PATH. `dir` is a scratch folder for the applet links.
pub fn host_command(busybox: &Path, dir: &Path, script: &str) -> std::io::Result<Command> {
    std::fs::create_dir_all(dir)?;
    let busybox = std::fs::canonicalize(busybox)?;
    for a in APPLETS {
        let link = dir.join(a);
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&busybox, &link)?;
    }
    let mut c = Command::new(dir.join("sh"));
    c.arg("-c").arg(script).env_clear().env("PATH", dir).current_dir(dir);
    Ok(c)
}

/// A scratch folder under the system's temporary folder, unique to this process.
pub fn scratch_dir(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!("kagami-{tag}-{}", std::process::id()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_parse_only_at_the_start() {
        assert_eq!(parse_line("KAGAMI-MARKER uptime=3.1\r\n"), Some(Event::Marker));
        assert_eq!(
            parse_line("KAGAMI-BEGIN zero up=7.13\r\n"),
            Some(Event::Begin {
                job: "zero".into(),
                up: Some(7.13)
            })
        );
        assert_eq!(
            parse_line("KAGAMI-RESULT gzip c0f8 - up=8.73\n"),
            Some(Event::Result {
                job: "gzip".into(),
                digest: "c0f8".into(),
                up: Some(8.73)
            })
        );
        assert_eq!(
            parse_line("[ 0.0] Kernel command line: kagami.workload=\"echo KAGAMI-BEGIN zero\""),
            None
        );
        assert_eq!(parse_line("KAGAMI-WORKLOAD-BEGIN read u _ </proc/uptime; echo KAGAMI-BEGIN"), None);
    }

    #[test]
    fn script_quotes_on_the_command_line() {
        let s = script(&jobs(4, 30000));
        assert!(!s.contains('"'));
        assert!(s.contains("count=4 ") && s.contains("seq 1 30000 | gzip -9 | sha256sum"));
        assert!(append_word(&s).starts_with("kagami.workload=\"read u _"));
    }
}
