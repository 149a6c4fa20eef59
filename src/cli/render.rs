//! Rendering of progress events (a live display on a terminal, plain lines
//! otherwise, JSON lines with `--output json`) and of results.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use vre_core::engine::output;
use vre_core::{ApplyReport, Error, Event, EventSink, Status};

/// Consumes the events of one command in a background task.
pub struct Renderer {
    sink: EventSink,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Renderer {
    /// `json`: events as JSON lines on stdout; `live`: an indicatif display on
    /// stderr; neither: plain lines on stderr.
    pub fn new(json: bool, live: bool) -> Self {
        let (sink, mut rx) = EventSink::channel();
        let (stop_tx, mut stop) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let mut view = if json {
                View::Json
            } else if live {
                View::Live(Box::new(LiveView::new()))
            } else {
                View::Plain(Instant::now())
            };
            loop {
                tokio::select! {
                    biased;
                    e = rx.recv() => match e {
                        Some(e) => view.show(&e),
                        None => break,
                    },
                    _ = &mut stop => {
                        while let Ok(e) = rx.try_recv() {
                            view.show(&e);
                        }
                        break;
                    }
                }
            }
            view.close();
        });
        Renderer {
            sink,
            stop: Some(stop_tx),
            task: Some(task),
        }
    }

    pub fn sink(&self) -> EventSink {
        self.sink.clone()
    }

    /// Prints every event emitted so far, then stops.
    pub async fn finish(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

enum View {
    Json,
    Plain(Instant),
    Live(Box<LiveView>),
}

impl View {
    fn show(&mut self, e: &Event) {
        match self {
            View::Json => {
                if let Ok(line) = serde_json::to_string(e) {
                    println!("{line}");
                }
            }
            View::Plain(started) => {
                if let Some(l) = line_for(e, *started) {
                    eprintln!("{l}");
                }
            }
            View::Live(v) => v.show(e),
        }
    }

    fn close(self) {
        if let View::Live(v) = self {
            v.close();
        }
    }
}

fn line_for(e: &Event, started: Instant) -> Option<String> {
    let t = started.elapsed().as_secs_f64();
    Some(match e {
        Event::Started { operation, cluster } => format!("[{t:6.1}s] {operation} {cluster}"),
        Event::Planned { summary } => format!(
            "[{t:6.1}s] plan: {} to create, {} to keep, {} to replace, {} to delete",
            summary.create, summary.keep, summary.replace, summary.delete
        ),
        Event::StepFinished { step, elapsed_ms } => {
            format!("[{t:6.1}s] done    {step} ({:.1}s)", *elapsed_ms as f64 / 1000.0)
        }
        Event::StepFailed { step, error } => format!("[{t:6.1}s] FAILED  {step}: {error}"),
        Event::StepSkipped { step, because } => format!("[{t:6.1}s] skipped {step} (after {because})"),
        Event::StepRetrying {
            step,
            attempt,
            delay_ms,
            error,
        } => format!("[{t:6.1}s] retry   {step} #{attempt} in {delay_ms} ms: {error}"),
        Event::NodesReady { ready, expected } => format!("[{t:6.1}s] nodes   {ready}/{expected} Ready"),
        Event::Warning { message } => format!("[{t:6.1}s] warning {message}"),
        Event::StepProgress {
            step,
            message,
            done: Some(d),
            total: Some(n),
        } if d == n => format!("[{t:6.1}s] {step}: {message} ({d}/{n})"),
        _ => return None,
    })
}

/// Spinners for running steps, bars where progress is counted.
struct LiveView {
    started: Instant,
    multi: MultiProgress,
    spinner: ProgressStyle,
    bar: ProgressStyle,
    bars: HashMap<String, ProgressBar>,
    nodes: Option<ProgressBar>,
}

impl LiveView {
    fn new() -> Self {
        LiveView {
            started: Instant::now(),
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
            spinner: ProgressStyle::with_template("{spinner:.cyan} {prefix:<28} {msg} [{elapsed}]")
                .unwrap_or_else(|_| ProgressStyle::default_spinner())
                .tick_chars("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏ "),
            bar: ProgressStyle::with_template("{spinner:.cyan} {prefix:<28} [{bar:30}] {pos}/{len} {msg} [{elapsed}]")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            bars: HashMap::new(),
            nodes: None,
        }
    }

    fn show(&mut self, e: &Event) {
        match e {
            Event::StepStarted { step, description } => {
                let pb = self.multi.add(ProgressBar::new_spinner());
                pb.set_style(self.spinner.clone());
                pb.set_prefix(step.clone());
                pb.set_message(description.clone());
                pb.enable_steady_tick(Duration::from_millis(120));
                self.bars.insert(step.clone(), pb);
            }
            Event::StepProgress {
                step,
                message,
                done,
                total,
            } => {
                if let Some(pb) = self.bars.get(step) {
                    if let (Some(d), Some(n)) = (done, total) {
                        pb.set_style(self.bar.clone());
                        pb.set_length(*n);
                        pb.set_position(*d);
                    }
                    pb.set_message(message.clone());
                }
            }
            Event::NodesReady { ready, expected } => {
                let pb = self.nodes.get_or_insert_with(|| {
                    let pb = self.multi.add(ProgressBar::new(*expected as u64));
                    pb.set_style(self.bar.clone());
                    pb.set_prefix("nodes Ready");
                    pb
                });
                pb.set_length(*expected as u64);
                pb.set_position(*ready as u64);
            }
            Event::StepFinished { step, elapsed_ms } => {
                if let Some(pb) = self.bars.remove(step) {
                    pb.finish_and_clear();
                }
                let _ = self
                    .multi
                    .println(format!("✓ {step} ({:.1}s)", *elapsed_ms as f64 / 1000.0));
            }
            Event::StepFailed { step, error } => {
                if let Some(pb) = self.bars.remove(step) {
                    pb.finish_and_clear();
                }
                let _ = self.multi.println(format!("✗ {step}: {error}"));
            }
            Event::StepRetrying { .. } | Event::Warning { .. } | Event::StepSkipped { .. } | Event::Planned { .. } => {
                if let Some(l) = line_for(e, self.started) {
                    let _ = self.multi.println(l);
                }
            }
            _ => {}
        }
    }

    fn close(self) {
        for (_, pb) in self.bars {
            pb.finish_and_clear();
        }
        if let Some(pb) = self.nodes {
            pb.finish_and_clear();
        }
    }
}

/// An error as the user should see it: spec problems one per line, others
/// prefixed with `error:`.
pub fn error_text(e: &Error) -> String {
    match e {
        Error::Spec(d) => d.to_string(),
        Error::Many(errors) => errors.iter().map(error_text).collect::<Vec<_>>().join("\n"),
        e => format!("error: {e}"),
    }
}

/// What `vre apply` prints at the end.
pub fn apply_text(r: &ApplyReport, dir: &Path) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Applied in {:.1}s: {} created, {} kept, {} replaced, {} deleted ({} steps, critical path {}, up to {} at once).",
        r.elapsed.as_secs_f64(),
        r.summary.create,
        r.summary.keep,
        r.summary.replace,
        r.summary.delete,
        r.steps,
        r.critical_path,
        r.peak_concurrency
    );
    if let Some(k) = r.outputs.get(output::KUBECONFIG) {
        let k = std::fs::canonicalize(k)
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| k.clone());
        let _ = writeln!(s, "kubeconfig:   {k}");
        let _ = writeln!(
            s,
            "              export KUBECONFIG={k}  (or `vre kubeconfig -C {}`)",
            dir.display()
        );
    }
    for (key, label) in [(output::API_ENDPOINT, "API server:"), (output::DOMAIN, "domain:")] {
        if let Some(v) = r.outputs.get(key) {
            let _ = writeln!(s, "{label:<13} {v}");
        }
    }
    for (k, v) in &r.outputs {
        if let Some(name) = k.strip_prefix(output::ENDPOINT_PREFIX) {
            let _ = writeln!(s, "{:<13} {v}", format!("{name}:"));
        }
    }
    s
}

/// What `vre status` prints.
pub fn status_text(st: &Status) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "VRE \"{}\" on {}", st.cluster, st.provider);
    let mut by_kind: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for r in &st.inventory {
        let e = by_kind.entry(r.kind.to_string()).or_default();
        e.0 += 1;
        if r.status == vre_core::ResourceStatus::Ready {
            e.1 += 1;
        }
    }
    if by_kind.is_empty() {
        let _ = writeln!(s, "  no resources in the cloud");
    }
    for (kind, (n, ready)) in by_kind {
        let _ = writeln!(s, "  {kind:<18} {n:>5}  ({ready} ready)");
    }
    for r in st
        .inventory
        .iter()
        .filter(|r| matches!(r.status, vre_core::ResourceStatus::Failed { .. }))
    {
        if let vre_core::ResourceStatus::Failed { reason } = &r.status {
            let _ = writeln!(s, "  ! {} {}: {reason}", r.kind, r.name);
        }
    }
    match &st.nodes {
        Ok(nodes) => {
            let ready = nodes.iter().filter(|n| n.ready).count();
            let _ = writeln!(s, "nodes: {ready}/{} Ready", nodes.len());
            for n in nodes.iter().filter(|n| !n.ready) {
                let _ = writeln!(
                    s,
                    "  {} not ready: {}",
                    n.name,
                    n.reason.as_deref().unwrap_or("unknown")
                );
            }
        }
        Err(e) => {
            let _ = writeln!(s, "nodes: unknown ({e})");
        }
    }
    if let Some(state) = &st.state {
        for (k, v) in &state.outputs {
            let _ = writeln!(s, "{k}: {v}");
        }
    }
    s
}
