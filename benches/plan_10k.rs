//! `vre plan` on a 10,000-node spec (issue 9): CPU time and memory.
//!
//! `cargo bench --bench plan_10k [-- --nodes 10000]`
//!
//! 1. The command as a user runs it: `vre plan -C DIR` as a child process
//!    against an empty simulated cloud served by another process (`vre sim
//!    serve`), watched through `/proc` (peak RSS = VmHWM, CPU = utime +
//!    stime); its text output is the rendered plan.
//! 2. The library alone, in this process: `Plan::compute` against an empty
//!    inventory and against an inventory holding every resource already (a
//!    plan with nothing to do: the diff over 10,000 nodes), and the plan's
//!    rendering, each the median of five runs, with the CPU time they took.

#[path = "../tests/support/mod.rs"]
mod support;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use support::deployment::{self, SpecOptions, Topology};
use support::process;
use support::sim::SimProcess;
use vre::core::plan::Plan;
use vre::core::resource::attr;
use vre::core::{CloudResource, ClusterSpec, ResourceKind};

fn bench_root() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("bench")
}

fn nodes_wanted() -> Result<u32, String> {
    let mut n = std::env::var("VRE_BENCH_NODES").ok();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--nodes" => n = Some(args.next().ok_or("--nodes needs a value")?),
            "--help" | "-h" => return Err("plan_10k [--nodes 10000] (or VRE_BENCH_NODES)".into()),
            _ => {}
        }
    }
    match n {
        None => Ok(10_000),
        Some(v) => v
            .parse::<u32>()
            .ok()
            .filter(|n| (2..=30_001).contains(n))
            .ok_or_else(|| format!("--nodes: \"{v}\" is not a node count between 2 and 30001")),
    }
}

/// CPU time of this process so far.
fn own_cpu() -> Duration {
    process::sample(std::process::id()).map(|s| s.cpu()).unwrap_or_default()
}

/// The report row of one `Display` rendering of a plan: its times and length.
fn print_render(wall: Duration, cpu: Duration, rendered: &str) {
    println!(
        "  render (Display):                    {:>8.1} ms wall {:>8.1} ms CPU  ({} lines)",
        wall.as_secs_f64() * 1e3,
        cpu.as_secs_f64() * 1e3,
        rendered.lines().count()
    );
}

/// Median wall and CPU time of five runs of `f`, and its last result.
fn timed<T>(mut f: impl FnMut() -> T) -> (Duration, Duration, T) {
    let mut walls = Vec::new();
    let mut cpus = Vec::new();
    let mut last = None;
    for _ in 0..5 {
        let cpu0 = own_cpu();
        let t = Instant::now();
        let out = f();
        walls.push(t.elapsed());
        cpus.push(own_cpu().saturating_sub(cpu0));
        last = Some(out);
    }
    walls.sort();
    cpus.sort();
    (walls[2], cpus[2], last.expect("five runs"))
}

/// What the cloud would list once every planned resource exists.
fn inventory_for(plan: &Plan, spec: &ClusterSpec) -> Vec<CloudResource> {
    plan.items
        .iter()
        .map(|it| {
            let mut r = CloudResource::new(it.kind.clone(), format!("id-{}", it.key.as_str()), it.name.clone())
                .with_key(it.key.clone());
            if it.kind == ResourceKind::Instance
                && let Some((role, _)) = it.key.node()
                && let Some(g) = spec.group(role)
            {
                r = r.with_attr(attr::FLAVOR, g.flavor.clone());
            }
            if it.kind == ResourceKind::Volume
                && let Some((role, _)) = it.key.node()
                && let Some(size) = spec.group(role).and_then(|g| g.volume_gb)
            {
                r = r.with_attr(attr::SIZE_GB, size.to_string());
            }
            r
        })
        .collect()
}

fn main() {
    let n = match nodes_wanted() {
        Ok(n) => n,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let t = Topology::kubenow(n);
    let root = bench_root();
    let dir = root.join("work").join(format!("plan-{n}"));
    if dir.exists() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    if let Err(e) = std::fs::create_dir_all(root.join("work")) {
        eprintln!("creating {}: {e}", root.display());
        std::process::exit(1);
    }
    let name = "plan10k";
    let options = SpecOptions {
        cidr: "10.0.0.0/17".into(),
        ..SpecOptions::default()
    };
    if let Err(e) = deployment::create(&dir, name, &deployment::spec_toml(name, t, &options)) {
        eprintln!("{e}");
        std::process::exit(1);
    }
    println!(
        "plan_10k: {n} nodes (1 master, {} service, {} storage, {} edge)",
        t.service, t.storage, t.edge
    );

    // 1. the command
    let sim = match SimProcess::start(&dir, &[]) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    let started = Instant::now();
    let mut child = match support::vre_command(&["plan", "-C", &dir.display().to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("starting vre plan: {e}");
            std::process::exit(1);
        }
    };
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let watched = process::watch(&mut child, started, Some(Duration::from_secs(600)));
    let text = out_reader.join().unwrap_or_default();
    let errors = err_reader.join().unwrap_or_default();
    let calls = sim.stats().map(|s| s.cloud_calls()).unwrap_or(0);
    drop(sim);
    if !watched.status.is_some_and(|s| s.success()) {
        eprintln!("vre plan failed ({:?}): {errors}", watched.status);
        std::process::exit(1);
    }
    println!("\n`vre plan -C DIR` (child process; the simulator in another):");
    println!(
        "  wall {:.2} s, CPU {:.2} s, peak RSS {:.1} MiB, {} cloud calls, output {} lines / {} bytes",
        watched.wall.as_secs_f64(),
        watched.cpu.as_secs_f64(),
        watched.peak_rss_kib as f64 / 1024.0,
        calls,
        text.lines().count(),
        text.len()
    );
    for l in text.lines().take(12) {
        println!("  | {l}");
    }
    if text.lines().count() > 12 {
        println!("  | ...");
        if let Some(l) = text.lines().last() {
            println!("  | {l}");
        }
    }

    // 2. the library
    let loaded = match vre::Components::standard().providers().load_spec(&dir) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("loading the spec: {e}");
            std::process::exit(1);
        }
    };
    let spec = loaded.spec;
    let (wall, cpu, plan) = timed(|| Plan::compute(&spec, None, &[]));
    let (rwall, rcpu, rendered) = timed(|| plan.to_string());
    let inventory = inventory_for(&plan, &spec);
    let (kwall, kcpu, kept) = timed(|| Plan::compute(&spec, None, &inventory));
    let (krwall, krcpu, krendered) = timed(|| kept.to_string());
    let s = plan.summary();
    let k = kept.summary();
    println!("\nlibrary, in this process (median of 5):");
    println!(
        "  Plan::compute, empty cloud:          {:>8.1} ms wall {:>8.1} ms CPU  ({} items: {} create, {} keep)",
        wall.as_secs_f64() * 1e3,
        cpu.as_secs_f64() * 1e3,
        plan.items.len(),
        s.create,
        s.keep
    );
    print_render(rwall, rcpu, &rendered);
    println!(
        "  Plan::compute, all {:>6} existing: {:>8.1} ms wall {:>8.1} ms CPU  ({} keep, {} create, {} replace, {} delete)",
        inventory.len(),
        kwall.as_secs_f64() * 1e3,
        kcpu.as_secs_f64() * 1e3,
        k.keep,
        k.create,
        k.replace,
        k.delete
    );
    print_render(krwall, krcpu, &krendered);
    let _ = std::fs::remove_dir_all(&dir);
}
