//! Deployment time against cluster size, on the simulator (issue 9).
//!
//! `cargo bench --bench deploy_scaling [-- --sizes 8,64 --latency-ms 50 ...]`
//! (flags, or the `VRE_BENCH_*` variables named in `--help`).
//!
//! For each size N (KubeNow's topology: one master, service:storage 5:3,
//! one edge per 32 nodes), a fresh deployment directory gets its own
//! simulator process (`vre sim serve`) with a fixed per-call latency, a
//! per-API rate limit, a boot time B and a join time J, and `vre apply
//! --output json` runs as another child process, watched through `/proc`
//! (peak RSS = VmHWM, CPU = utime + stime, read again when it has exited
//! but is not reaped yet). Measured:
//! - wall time from spawning `vre apply` to the last microservice step
//!   reported ready (and to the process's exit);
//! - cloud and Kubernetes API calls (the simulator's `/stats`, before and after);
//! - the DAG's critical path (in steps, from the apply report);
//! - the critical path in calls, C: the number of calls whose latency the
//!   apply waits for one after another, measured as the slope of the time
//!   to ready against the per-call latency, between two calibration runs at
//!   latency L and 3L with boot, join and ready times zero and no rate
//!   limit (so that neither boots nor 429s enter the slope);
//! - the lower bound B + J + C x L and the ratio of the wall time to it.
//!
//! At the largest size the simulator is then restarted on the saved state
//! with no latency and no rate limit, to report its own memory and the time
//! it takes to answer a GET (a Nova server and a Kubernetes Node).
//!
//! Results: a table on stdout, target/bench/deploy_scaling.csv, and each
//! size's step timeline in target/bench/deploy_scaling-steps-N.csv.

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::deployment::{self, SpecOptions, Topology};
use support::process::{self, Watched};
use support::sim::SimProcess;
use vre::sim::StatsSnapshot;

const SIZES: &[u32] = &[8, 16, 32, 64, 128, 256, 512, 1024];

/// The knobs of one bench run.
#[derive(Clone, Debug)]
struct Knobs {
    sizes: Vec<u32>,
    /// Wall-clock latency added to every API call (ms).
    latency_ms: f64,
    /// Calls per second per API before 429 (cloud services and each API server).
    rate_limit: f64,
    burst: u32,
    /// Simulated seconds -> wall seconds for boots, joins and cloud operations.
    time_scale: f64,
    boot_seconds: f64,
    join_seconds: f64,
    ready_seconds: f64,
    parallelism: Option<u32>,
    calibrate: bool,
    seed: u64,
}

impl Default for Knobs {
    fn default() -> Self {
        Knobs {
            sizes: SIZES.to_vec(),
            latency_ms: 50.0,
            rate_limit: 50.0,
            burst: 100,
            time_scale: 0.05,
            boot_seconds: 60.0,
            join_seconds: 30.0,
            ready_seconds: 10.0,
            parallelism: None,
            calibrate: true,
            seed: 1,
        }
    }
}

const HELP: &str = "deploy_scaling: vre apply time against cluster size on vre-sim
flags (or variables):
  --sizes 8,16,...      VRE_BENCH_SIZES         total nodes per run (default 8..1024, doubling)
  --latency-ms 50       VRE_BENCH_LATENCY_MS    wall-clock latency of every API call
  --rate-limit 50       VRE_BENCH_RATE_LIMIT    calls/s per API before 429 + Retry-After
  --burst 100           VRE_BENCH_BURST         calls allowed at once above the rate
  --time-scale 0.05     VRE_BENCH_TIME_SCALE    simulated seconds -> wall seconds
  --boot-seconds 60     VRE_BENCH_BOOT_SECONDS  BUILD -> ACTIVE (simulated)
  --join-seconds 30     VRE_BENCH_JOIN_SECONDS  ACTIVE -> node registered (simulated)
  --ready-seconds 10    VRE_BENCH_READY_SECONDS registered -> Ready (simulated)
  --parallelism N       VRE_BENCH_PARALLELISM   engine.parallelism (default: vre's)
  --no-calibration      VRE_BENCH_CALIBRATE=0   skip the two latency runs that measure C
";

impl Knobs {
    fn from_env_and_args() -> Result<Knobs, String> {
        let mut k = Knobs::default();
        let mut values: BTreeMap<String, String> = BTreeMap::new();
        for (flag, var) in [
            ("sizes", "VRE_BENCH_SIZES"),
            ("latency-ms", "VRE_BENCH_LATENCY_MS"),
            ("rate-limit", "VRE_BENCH_RATE_LIMIT"),
            ("burst", "VRE_BENCH_BURST"),
            ("time-scale", "VRE_BENCH_TIME_SCALE"),
            ("boot-seconds", "VRE_BENCH_BOOT_SECONDS"),
            ("join-seconds", "VRE_BENCH_JOIN_SECONDS"),
            ("ready-seconds", "VRE_BENCH_READY_SECONDS"),
            ("parallelism", "VRE_BENCH_PARALLELISM"),
            ("calibrate", "VRE_BENCH_CALIBRATE"),
        ] {
            if let Ok(v) = std::env::var(var) {
                values.insert(flag.to_string(), v);
            }
        }
        let mut args = std::env::args().skip(1);
        while let Some(a) = args.next() {
            match a.as_str() {
                // cargo bench passes --bench to every bench binary
                "--bench" => {}
                "--help" | "-h" => return Err(HELP.to_string()),
                "--no-calibration" => {
                    values.insert("calibrate".into(), "0".into());
                }
                flag if flag.starts_with("--") => {
                    let v = args.next().ok_or_else(|| format!("{flag} needs a value\n{HELP}"))?;
                    values.insert(flag.trim_start_matches("--").to_string(), v);
                }
                // a filter cargo passes through: not used
                _ => {}
            }
        }
        for (key, v) in &values {
            let num = || {
                v.parse::<f64>()
                    .map_err(|_| format!("--{key}: \"{v}\" is not a number"))
            };
            match key.as_str() {
                "sizes" => {
                    k.sizes = v
                        .split(',')
                        .map(|s| s.trim().parse::<u32>().ok().filter(|n| *n >= 2))
                        .collect::<Option<Vec<_>>>()
                        .ok_or_else(|| format!("--sizes: \"{v}\" is not a list of node counts (2 or more)"))?
                }
                "latency-ms" => k.latency_ms = num()?,
                "rate-limit" => k.rate_limit = num()?,
                "burst" => k.burst = num()? as u32,
                "time-scale" => k.time_scale = num()?,
                "boot-seconds" => k.boot_seconds = num()?,
                "join-seconds" => k.join_seconds = num()?,
                "ready-seconds" => k.ready_seconds = num()?,
                "parallelism" => k.parallelism = Some(num()? as u32),
                "calibrate" => k.calibrate = !matches!(v.as_str(), "0" | "false" | "no"),
                other => return Err(format!("unknown flag --{other}\n{HELP}")),
            }
        }
        if k.time_scale <= 0.0 {
            return Err("--time-scale must be above 0".into());
        }
        Ok(k)
    }

    /// B in wall seconds.
    fn boot(&self) -> f64 {
        self.boot_seconds * self.time_scale
    }

    /// J in wall seconds: joining plus turning Ready.
    fn join(&self) -> f64 {
        (self.join_seconds + self.ready_seconds) * self.time_scale
    }

    /// The `[sim]` table: the simulator scales every duration, latency
    /// included, so the wall-clock latency is divided by the time scale.
    fn sim_table(&self, latency_ms: f64, with_times: bool, rate_limited: bool) -> Vec<String> {
        let mut t = vec![
            format!("time_scale = {}", self.time_scale),
            format!("latency_ms = {}", latency_ms / self.time_scale),
            "jitter_ms = 0".into(),
            "boot_jitter_seconds = 0".into(),
            format!("seed = {}", self.seed),
        ];
        let (b, j, r) = if with_times {
            (self.boot_seconds, self.join_seconds, self.ready_seconds)
        } else {
            (0.0, 0.0, 0.0)
        };
        t.push(format!("boot_seconds = {b}"));
        t.push(format!("join_seconds = {j}"));
        t.push(format!("ready_seconds = {r}"));
        if rate_limited {
            t.push(format!("rate_limit_per_second = {}", self.rate_limit));
            t.push(format!("rate_limit_burst = {}", self.burst));
        }
        t
    }
}

/// One `vre apply`, measured.
struct ApplyRun {
    watched: Watched,
    /// Spawn -> the last microservice step finished.
    ready: Duration,
    calls: StatsSnapshot,
    report: Value,
    /// Every step's start and finish, seconds after spawn.
    steps: Vec<(String, f64, f64)>,
    sim_peak_rss_kib: u64,
    sim_cpu: Duration,
}

fn stats_delta(after: &StatsSnapshot, before: &StatsSnapshot) -> StatsSnapshot {
    StatsSnapshot {
        keystone: after.keystone - before.keystone,
        nova: after.nova - before.nova,
        neutron: after.neutron - before.neutron,
        cinder: after.cinder - before.cinder,
        glance: after.glance - before.glance,
        kube: after.kube - before.kube,
        injected_faults: after.injected_faults - before.injected_faults,
        rate_limited: after.rate_limited - before.rate_limited,
    }
}

fn bench_root() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("bench")
}

/// A fresh deployment directory with its simulator, then `vre apply`.
fn apply_once(dir: &Path, n: u32, knobs: &Knobs, sim: Vec<String>) -> Result<(ApplyRun, SimProcess), String> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(|e| format!("removing {}: {e}", dir.display()))?;
    }
    std::fs::create_dir_all(dir.parent().expect("under the bench root")).map_err(|e| e.to_string())?;
    let name = format!("bench{n}");
    let options = SpecOptions {
        cidr: "10.0.0.0/20".into(),
        parallelism: knobs.parallelism,
        sim,
        ..SpecOptions::default()
    };
    deployment::create(
        dir,
        &name,
        &deployment::spec_toml(&name, Topology::kubenow(n), &options),
    )?;
    let sim = SimProcess::start(dir, &[])?;
    let before = sim.stats()?;
    let stderr_path = dir.join("apply.log");
    let stderr = std::fs::File::create(&stderr_path).map_err(|e| e.to_string())?;
    let started = Instant::now();
    let mut child = support::vre_command(&[
        "apply",
        "-C",
        &dir.display().to_string(),
        "--auto-approve",
        "--output",
        "json",
    ])
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(stderr)
    .spawn()
    .map_err(|e| format!("starting vre apply: {e}"))?;
    let stdout = child.stdout.take().expect("piped");
    // every JSON line with the time it arrived
    let lines: Arc<Mutex<Vec<(Duration, Value)>>> = Arc::default();
    let reader = {
        let lines = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    lines.lock().expect("reader").push((started.elapsed(), v));
                }
            }
        })
    };
    let watched = process::watch(&mut child, started, Some(Duration::from_secs(3600)));
    let _ = reader.join();
    let after = sim.stats()?;
    let sim_sample = sim.sample().unwrap_or_default();
    let lines = std::mem::take(&mut *lines.lock().expect("reader"));
    if !watched.status.is_some_and(|s| s.success()) {
        let log = std::fs::read_to_string(&stderr_path).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(15).collect();
        let errors: Vec<String> = lines
            .iter()
            .filter(|(_, v)| v["event"] == "error" || v["event"] == "step_failed")
            .map(|(_, v)| v.to_string())
            .collect();
        return Err(format!(
            "vre apply failed at N={n} ({:?}): {}\n{}",
            watched.status,
            errors.join("\n"),
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        ));
    }
    let ready = lines
        .iter()
        .filter(|(_, v)| {
            v["event"] == "step_finished" && v["step"].as_str().is_some_and(|s| s.starts_with("microservice/"))
        })
        .map(|(t, _)| *t)
        .max()
        .unwrap_or(watched.wall);
    let mut starts: BTreeMap<String, f64> = BTreeMap::new();
    let mut steps = Vec::new();
    for (t, v) in &lines {
        let Some(step) = v["step"].as_str() else { continue };
        match v["event"].as_str() {
            Some("step_started") => {
                starts.insert(step.to_string(), t.as_secs_f64());
            }
            Some("step_finished") => {
                steps.push((
                    step.to_string(),
                    starts.get(step).copied().unwrap_or(0.0),
                    t.as_secs_f64(),
                ));
            }
            _ => {}
        }
    }
    let report = lines
        .iter()
        .find(|(_, v)| v["event"] == "result")
        .map(|(_, v)| v["report"].clone())
        .ok_or("vre apply printed no result")?;
    Ok((
        ApplyRun {
            watched,
            ready,
            calls: stats_delta(&after, &before),
            report,
            steps,
            sim_peak_rss_kib: sim_sample.hwm_kib.unwrap_or(0),
            sim_cpu: sim_sample.cpu(),
        },
        sim,
    ))
}

/// C: calls on the critical path, from two runs at latency L and 3L.
struct Calibration {
    low: Duration,
    high: Duration,
    calls: f64,
}

fn calibrate(root: &Path, n: u32, knobs: &Knobs) -> Result<Calibration, String> {
    let l = knobs.latency_ms;
    let mut times = Vec::new();
    for (i, latency) in [l, 3.0 * l].into_iter().enumerate() {
        let dir = root.join(format!("calibrate-{n}-{i}"));
        let (run, sim) = apply_once(&dir, n, knobs, knobs.sim_table(latency, false, false))?;
        drop(sim);
        let _ = std::fs::remove_dir_all(&dir);
        times.push(run.ready);
    }
    let slope = (times[1].as_secs_f64() - times[0].as_secs_f64()) / (2.0 * l / 1000.0);
    Ok(Calibration {
        low: times[0],
        high: times[1],
        calls: slope.max(0.0),
    })
}

/// p50 and p99 of `count` sequential requests, after a warm-up.
fn latency_of(
    http: &support::http::Http,
    count: usize,
    req: impl Fn() -> reqwest::RequestBuilder,
) -> Result<(Duration, Duration), String> {
    let mut samples = Vec::with_capacity(count);
    for i in 0..count + 50 {
        let t = Instant::now();
        let r = http.block_on(async {
            req()
                .send()
                .await
                .map_err(|e| e.to_string())?
                .bytes()
                .await
                .map_err(|e| e.to_string())
        });
        let took = t.elapsed();
        r?;
        if i >= 50 {
            samples.push(took);
        }
    }
    samples.sort();
    Ok((samples[count / 2], samples[count * 99 / 100]))
}

/// The simulator holding a whole cluster: its memory, and GET latencies.
struct SimAtScale {
    rss_kib: u64,
    nova_get: (Duration, Duration),
    kube_get: (Duration, Duration),
}

fn measure_sim(dir: &Path) -> Result<SimAtScale, String> {
    let env: Vec<(String, String)> = [
        ("VRE_SIM_LATENCY_MS", "0"),
        ("VRE_SIM_JITTER_MS", "0"),
        ("VRE_SIM_RATE_LIMIT_PER_SECOND", "1000000"),
        ("VRE_SIM_RATE_LIMIT_BURST", "1000000"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let sim = SimProcess::start(dir, &env)?;
    // Nova: show one server
    let reader = support::openstack::OpenStackApi::login(&sim.serving.auth_url, &sim.password()?)?;
    let state: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join(".vre/state.json")).map_err(|e| format!("reading the state: {e}"))?,
    )
    .map_err(|e| e.to_string())?;
    let server = state["resources"]["server/master-1"]["id"]
        .as_str()
        .ok_or("no master in the state")?
        .to_string();
    let http = support::http::Http::new();
    let url = format!("{}/servers/{server}", reader.compute_url());
    let nova_get = latency_of(&http, 1000, || {
        http.client().get(&url).header("X-Auth-Token", reader.token())
    })?;
    // Kubernetes: get one Node with the admin kubeconfig
    let kube = support::kube::KubeApi::from_kubeconfig(&dir.join("kubeconfig"))?;
    let node = state["resources"]["server/master-1"]["name"]
        .as_str()
        .ok_or("no master name")?;
    let node_url = format!("{}/api/v1/nodes/{node}", kube.server);
    let kube_get = latency_of(&kube.http, 1000, || kube.http.client().get(&node_url))?;
    let rss_kib = sim.sample().and_then(|s| s.rss_kib).unwrap_or(0);
    sim.stop()?;
    Ok(SimAtScale {
        rss_kib,
        nova_get,
        kube_get,
    })
}

fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let mem_kib: u64 = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!(
        "{cores} cores (nproc), {:.1} GiB RAM, {model}",
        mem_kib as f64 / 1024.0 / 1024.0
    )
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn main() {
    let knobs = match Knobs::from_env_and_args() {
        Ok(k) => k,
        Err(msg) => {
            eprintln!("{msg}");
            std::process::exit(if msg == HELP { 0 } else { 2 });
        }
    };
    let root = bench_root();
    let work = root.join("work");
    println!("deploy_scaling on {}", machine());
    println!(
        "sim: latency {} ms per call (wall clock), rate limit {}/s burst {} per API, time scale {}, B = {} s ({} s simulated), J = {} s (join {} s + ready {} s simulated), parallelism {}",
        knobs.latency_ms,
        knobs.rate_limit,
        knobs.burst,
        knobs.time_scale,
        knobs.boot(),
        knobs.boot_seconds,
        knobs.join(),
        knobs.join_seconds,
        knobs.ready_seconds,
        knobs.parallelism.map_or("vre's default".to_string(), |p| p.to_string()),
    );
    let header = [
        "N",
        "service",
        "storage",
        "edge",
        "ready_s",
        "apply_s",
        "cloud_calls",
        "kube_calls",
        "429s",
        "dag_steps",
        "dag_cp_steps",
        "cp_calls",
        "lower_bound_s",
        "ratio",
        "vre_peak_rss_mib",
        "vre_cpu_s",
        "sim_peak_rss_mib",
        "sim_cpu_s",
    ];
    let mut csv = header.join(",") + "\n";
    println!(
        "\n{:>5} {:>17} {:>8} {:>8} {:>7} {:>6} {:>5} {:>9} {:>8} {:>7} {:>6} {:>8} {:>7} {:>8} {:>7}",
        "N",
        "svc/sto/edge",
        "ready s",
        "cloud",
        "kube",
        "429",
        "steps",
        "cp steps",
        "cp calls",
        "bound s",
        "ratio",
        "vre MiB",
        "vre cpu",
        "sim MiB",
        "sim cpu"
    );
    let largest = knobs.sizes.iter().copied().max().unwrap_or(0);
    let mut sim_at_scale = None;
    let mut failed = false;
    for &n in &knobs.sizes {
        let t = Topology::kubenow(n);
        let calibration = if knobs.calibrate {
            match calibrate(&work, n, &knobs) {
                Ok(c) => Some(c),
                Err(e) => {
                    eprintln!("calibration at N={n} failed: {e}");
                    failed = true;
                    None
                }
            }
        } else {
            None
        };
        let dir = work.join(format!("deploy-{n}"));
        let run = match apply_once(&dir, n, &knobs, knobs.sim_table(knobs.latency_ms, true, true)) {
            Ok((run, sim)) => {
                if n == largest {
                    if let Err(e) = sim.stop() {
                        eprintln!("{e}");
                    }
                    match measure_sim(&dir) {
                        Ok(s) => sim_at_scale = Some((n, s)),
                        Err(e) => eprintln!("measuring the simulator at N={n} failed: {e}"),
                    }
                }
                run
            }
            Err(e) => {
                eprintln!("{e}");
                failed = true;
                continue;
            }
        };
        let _ = std::fs::remove_dir_all(&dir);
        let mut timeline = String::from("step,start_s,finish_s\n");
        for (step, start, finish) in &run.steps {
            let _ = writeln!(timeline, "{step},{start:.3},{finish:.3}");
        }
        let timeline_path = root.join(format!("deploy_scaling-steps-{n}.csv"));
        if let Err(e) = std::fs::create_dir_all(&root).and_then(|_| std::fs::write(&timeline_path, timeline)) {
            eprintln!("writing {}: {e}", timeline_path.display());
        }
        let steps = run.report["steps"].as_u64().unwrap_or(0);
        let cp_steps = run.report["critical_path"].as_u64().unwrap_or(0);
        let cp_calls = calibration.as_ref().map(|c| c.calls);
        let bound = cp_calls.map(|c| knobs.boot() + knobs.join() + c * knobs.latency_ms / 1000.0);
        let ratio = bound.map(|b| run.ready.as_secs_f64() / b);
        let fmt_opt = |v: Option<f64>, p: usize| v.map_or("-".to_string(), |v| format!("{v:.p$}"));
        println!(
            "{:>5} {:>17} {:>8.1} {:>8} {:>7} {:>6} {:>5} {:>9} {:>8} {:>7} {:>6} {:>8.0} {:>7.1} {:>8.0} {:>7.1}",
            n,
            format!("{}/{}/{}", t.service, t.storage, t.edge),
            run.ready.as_secs_f64(),
            run.calls.cloud_calls(),
            run.calls.kube,
            run.calls.rate_limited,
            steps,
            cp_steps,
            fmt_opt(cp_calls, 0),
            fmt_opt(bound, 1),
            fmt_opt(ratio, 2),
            mib(run.watched.peak_rss_kib),
            run.watched.cpu.as_secs_f64(),
            mib(run.sim_peak_rss_kib),
            run.sim_cpu.as_secs_f64(),
        );
        if let Some(c) = &calibration {
            println!(
                "      (C: ready in {:.2} s at {} ms, {:.2} s at {} ms, no boot/join, no rate limit)",
                c.low.as_secs_f64(),
                knobs.latency_ms,
                c.high.as_secs_f64(),
                3.0 * knobs.latency_ms
            );
        }
        let _ = writeln!(
            csv,
            "{n},{},{},{},{:.3},{:.3},{},{},{},{steps},{cp_steps},{},{},{},{:.1},{:.3},{:.1},{:.3}",
            t.service,
            t.storage,
            t.edge,
            run.ready.as_secs_f64(),
            run.watched.wall.as_secs_f64(),
            run.calls.cloud_calls(),
            run.calls.kube,
            run.calls.rate_limited,
            fmt_opt(cp_calls, 1),
            fmt_opt(bound, 3),
            fmt_opt(ratio, 3),
            mib(run.watched.peak_rss_kib),
            run.watched.cpu.as_secs_f64(),
            mib(run.sim_peak_rss_kib),
            run.sim_cpu.as_secs_f64(),
        );
    }
    if let Some((n, s)) = &sim_at_scale {
        println!(
            "\nsimulator holding the {n}-node cluster (restarted on its saved state, no latency): RSS {:.0} MiB; GET of a Nova server p50 {:.0} us p99 {:.0} us; GET of a Node p50 {:.0} us p99 {:.0} us (sequential, over loopback, client included)",
            mib(s.rss_kib),
            s.nova_get.0.as_secs_f64() * 1e6,
            s.nova_get.1.as_secs_f64() * 1e6,
            s.kube_get.0.as_secs_f64() * 1e6,
            s.kube_get.1.as_secs_f64() * 1e6,
        );
    }
    let csv_path = root.join("deploy_scaling.csv");
    match std::fs::create_dir_all(&root).and_then(|_| std::fs::write(&csv_path, csv)) {
        Ok(()) => println!("\nCSV: {}", csv_path.display()),
        Err(e) => {
            eprintln!("writing {}: {e}", csv_path.display());
            failed = true;
        }
    }
    let _ = std::fs::remove_dir_all(&work);
    if failed {
        std::process::exit(1);
    }
}
