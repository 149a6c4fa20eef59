//! A DAG of steps run with bounded concurrency: a step starts as soon as
//! everything it depends on has finished and a slot is free (among ready
//! steps, the one heading the heaviest chain of dependents first); a failure stops new steps from
//! starting, lets the running ones finish (so their results are saved), and
//! skips everything downstream.

use std::cmp::Reverse;
use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::time::Instant;

use futures::stream::{FuturesUnordered, StreamExt};
use tokio::sync::watch;

use crate::error::{Error, Result};
use crate::events::{Event, EventSink};

struct Step<T> {
    id: String,
    description: String,
    deps: Vec<usize>,
    /// How long the step takes relative to others (only orders ready steps).
    weight: u32,
    payload: Option<T>,
}

/// Steps and their dependencies.
pub struct Dag<T> {
    steps: Vec<Step<T>>,
    index: HashMap<String, usize>,
}

impl<T> Default for Dag<T> {
    fn default() -> Self {
        Dag {
            steps: Vec::new(),
            index: HashMap::new(),
        }
    }
}

/// What happened to each step.
#[derive(Debug, Default)]
pub struct DagReport {
    /// Ids of the steps that finished.
    pub finished: Vec<String>,
    /// Ids of the steps that failed, with their errors.
    pub failed: Vec<(String, Error)>,
    /// Ids of the steps that did not run because a dependency failed.
    pub skipped: Vec<String>,
    /// Most steps that ran at the same time.
    pub peak_concurrency: usize,
    /// Cancellation stopped new steps from starting.
    pub interrupted: bool,
}

impl DagReport {
    /// `Ok` when every step finished.
    pub fn into_result(self) -> Result<()> {
        if self.interrupted && self.failed.is_empty() {
            return Err(Error::Interrupted);
        }
        Error::collect(self.failed.into_iter().map(|(_, e)| e).collect())
    }
}

impl<T> Dag<T> {
    /// An empty graph.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of steps.
    pub fn len(&self) -> usize {
        self.steps.len()
    }

    /// No steps at all.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// A step with this id exists.
    pub fn contains(&self, id: &str) -> bool {
        self.index.contains_key(id)
    }

    /// Adds a step after the steps it depends on (which must exist already,
    /// so a DAG built this way has no cycles). Unknown dependencies are ignored
    /// (a step that is not part of this run is already done).
    pub fn add(&mut self, id: impl Into<String>, description: impl Into<String>, deps: &[String], payload: T) {
        self.add_weighted(id, description, deps, 1, payload);
    }

    /// [`Dag::add`] for a step expected to take about `weight` times as long
    /// as a plain one (e.g. one that waits for machines to boot). Weights
    /// only decide which ready step gets a free slot first: the one heading
    /// the heaviest chain of dependents.
    pub fn add_weighted(
        &mut self,
        id: impl Into<String>,
        description: impl Into<String>,
        deps: &[String],
        weight: u32,
        payload: T,
    ) {
        let id = id.into();
        assert!(!self.index.contains_key(&id), "step {id} added twice");
        let deps = deps.iter().filter_map(|d| self.index.get(d).copied()).collect();
        self.index.insert(id.clone(), self.steps.len());
        self.steps.push(Step {
            id,
            description: description.into(),
            deps,
            weight: weight.max(1),
            payload: Some(payload),
        });
    }

    /// Step ids with their dependencies, in insertion order.
    pub fn edges(&self) -> Vec<(String, Vec<String>)> {
        self.steps
            .iter()
            .map(|s| (s.id.clone(), s.deps.iter().map(|d| self.steps[*d].id.clone()).collect()))
            .collect()
    }

    /// Length of the longest chain of dependent steps.
    pub fn critical_path(&self) -> usize {
        let mut depth = vec![0usize; self.steps.len()];
        for (i, s) in self.steps.iter().enumerate() {
            depth[i] = 1 + s.deps.iter().map(|d| depth[*d]).max().unwrap_or(0);
        }
        depth.into_iter().max().unwrap_or(0)
    }

    /// Runs every step with at most `parallelism` at once. `cancel` turning
    /// true stops new steps from starting.
    pub async fn run<'a, F>(
        mut self,
        parallelism: usize,
        events: &EventSink,
        mut cancel: Option<watch::Receiver<bool>>,
        mut run_step: F,
    ) -> DagReport
    where
        F: FnMut(String, T) -> Pin<Box<dyn Future<Output = Result<()>> + Send + 'a>>,
    {
        let n = self.steps.len();
        let parallelism = parallelism.max(1);
        let mut remaining_deps: Vec<usize> = self.steps.iter().map(|s| s.deps.len()).collect();
        let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n];
        for (i, s) in self.steps.iter().enumerate() {
            for d in &s.deps {
                dependents[*d].push(i);
            }
        }
        // Ready steps start heaviest-chain-first: a step heading a long chain
        // of dependents (bootstrap -> servers -> connect -> nodes -> ...) must
        // not wait behind hundreds of independent short ones (per-node
        // volumes, attachments) for a free slot. A step's height is its weight
        // plus the heaviest height among its dependents (steps are added after
        // their dependencies, so reverse insertion order visits dependents
        // first). Ties go in insertion order: the schedule stays deterministic.
        let mut height = vec![0u64; n];
        for i in (0..n).rev() {
            height[i] = u64::from(self.steps[i].weight) + dependents[i].iter().map(|d| height[*d]).max().unwrap_or(0);
        }
        let mut ready: BTreeSet<(Reverse<u64>, usize)> = (0..n)
            .filter(|i| remaining_deps[*i] == 0)
            .map(|i| (Reverse(height[i]), i))
            .collect();
        let mut blocked_by: Vec<Option<String>> = vec![None; n];
        let mut running = FuturesUnordered::new();
        let mut report = DagReport::default();
        let mut stop = false;

        loop {
            if let Some(c) = &cancel
                && *c.borrow()
                && !stop
            {
                stop = true;
                report.interrupted = true;
            }
            while !stop && running.len() < parallelism {
                let Some((_, i)) = ready.pop_first() else { break };
                let step = &mut self.steps[i];
                let payload = step.payload.take().expect("each step runs once");
                events.emit(Event::StepStarted {
                    step: step.id.clone(),
                    description: step.description.clone(),
                });
                let fut = run_step(step.id.clone(), payload);
                let started = Instant::now();
                running.push(async move { (i, fut.await, started.elapsed()) });
                report.peak_concurrency = report.peak_concurrency.max(running.len());
            }
            if running.is_empty() {
                break;
            }
            let next = match cancel.as_mut() {
                Some(c) if !stop => {
                    tokio::select! {
                        r = running.next() => r,
                        _ = c.changed() => continue,
                    }
                }
                _ => running.next().await,
            };
            let Some((i, result, elapsed)) = next else { break };
            let id = self.steps[i].id.clone();
            match result {
                Ok(()) => {
                    events.emit(Event::StepFinished {
                        step: id.clone(),
                        elapsed_ms: elapsed.as_millis() as u64,
                    });
                    report.finished.push(id);
                    for &d in &dependents[i] {
                        remaining_deps[d] -= 1;
                        if remaining_deps[d] == 0 && blocked_by[d].is_none() {
                            ready.insert((Reverse(height[d]), d));
                        }
                    }
                }
                Err(e) => {
                    events.emit(Event::StepFailed {
                        step: id.clone(),
                        error: e.to_string(),
                    });
                    stop = true;
                    // everything downstream is skipped
                    let mut stack = dependents[i].clone();
                    while let Some(d) = stack.pop() {
                        if blocked_by[d].is_none() {
                            blocked_by[d] = Some(id.clone());
                            stack.extend(dependents[d].iter().copied());
                        }
                    }
                    report.failed.push((id, e));
                }
            }
        }
        for (i, s) in self.steps.iter().enumerate() {
            if s.payload.is_some() {
                let because = blocked_by[i].clone().unwrap_or_else(|| {
                    if report.interrupted {
                        "interrupted".to_string()
                    } else {
                        "an earlier step failed".to_string()
                    }
                });
                events.emit(Event::StepSkipped {
                    step: s.id.clone(),
                    because,
                });
                report.skipped.push(s.id.clone());
            }
        }
        report
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;
    use crate::error::CloudError;

    fn ids(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    /// Runs `dag` with `parallelism` slots, each step first pausing for
    /// `pause(id)`; checks that no step failed and returns the steps in the
    /// order they finished.
    async fn finishing_order(dag: Dag<()>, parallelism: usize, pause: fn(&str) -> Duration) -> Vec<String> {
        let order = Arc::new(Mutex::new(Vec::new()));
        let o = order.clone();
        let report = dag
            .run(parallelism, &EventSink::none(), None, move |id, ()| {
                let o = o.clone();
                Box::pin(async move {
                    let p = pause(&id);
                    if !p.is_zero() {
                        tokio::time::sleep(p).await;
                    }
                    o.lock().unwrap().push(id);
                    Ok(())
                })
            })
            .await;
        assert!(report.failed.is_empty());
        order.lock().unwrap().clone()
    }

    #[tokio::test]
    async fn runs_in_dependency_order() {
        let mut dag = Dag::new();
        dag.add("network", "", &[], ());
        dag.add("image", "", &[], ());
        dag.add("sg", "", &ids(&["network"]), ());
        dag.add("servers", "", &ids(&["sg", "image"]), ());
        dag.add("nodes", "", &ids(&["servers"]), ());
        assert_eq!(dag.critical_path(), 4);
        let order = finishing_order(dag, 4, |id| Duration::from_millis(if id == "image" { 20 } else { 1 })).await;
        let pos = |s: &str| order.iter().position(|x| x == s).unwrap();
        assert!(pos("network") < pos("sg"));
        assert!(pos("sg") < pos("servers"));
        assert!(pos("image") < pos("servers"));
        assert!(pos("servers") < pos("nodes"));
    }

    #[tokio::test]
    async fn the_head_of_the_longest_chain_starts_first() {
        // five independent steps added first, then a chain of three: with one
        // slot the chain's links go first while they head a longer chain than
        // the independent steps; the last link ties with them and goes in
        // insertion order
        let mut dag = Dag::new();
        for i in 1..=5 {
            dag.add(format!("short-{i}"), "", &[], ());
        }
        dag.add("head", "", &[], ());
        dag.add("middle", "", &ids(&["head"]), ());
        dag.add("tail", "", &ids(&["middle"]), ());
        assert_eq!(
            finishing_order(dag, 1, |_| Duration::ZERO).await,
            ids(&[
                "head", "middle", "short-1", "short-2", "short-3", "short-4", "short-5", "tail"
            ])
        );
    }

    #[tokio::test]
    async fn a_heavy_step_goes_before_light_ones_of_the_same_length() {
        // `light-i -> end` and `heavy -> end` are chains of two steps each;
        // the heavy one (a wait on machines, say) gets the slot first
        let mut dag = Dag::new();
        for i in 1..=3 {
            dag.add(format!("light-{i}"), "", &[], ());
        }
        dag.add_weighted("heavy", "", &[], 5, ());
        dag.add("end", "", &ids(&["light-1", "light-2", "light-3", "heavy"]), ());
        assert_eq!(
            finishing_order(dag, 1, |_| Duration::ZERO).await,
            ids(&["heavy", "light-1", "light-2", "light-3", "end"])
        );
    }

    #[tokio::test]
    async fn never_exceeds_the_concurrency_bound() {
        let mut dag = Dag::new();
        for i in 0..20 {
            dag.add(format!("s{i}"), "", &[], ());
        }
        let now = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let (n, p) = (now.clone(), peak.clone());
        let report = dag
            .run(3, &EventSink::none(), None, move |_, ()| {
                let (n, p) = (n.clone(), p.clone());
                Box::pin(async move {
                    let c = n.fetch_add(1, Ordering::SeqCst) + 1;
                    p.fetch_max(c, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    n.fetch_sub(1, Ordering::SeqCst);
                    Ok(())
                })
            })
            .await;
        assert_eq!(report.finished.len(), 20);
        assert_eq!(peak.load(Ordering::SeqCst), 3);
        assert_eq!(report.peak_concurrency, 3);
    }

    #[tokio::test]
    async fn failure_skips_dependents_and_lets_others_finish() {
        let mut dag = Dag::new();
        dag.add("a", "", &[], ());
        dag.add("slow", "", &[], ());
        dag.add("b", "", &ids(&["a"]), ());
        dag.add("c", "", &ids(&["b"]), ());
        let report = dag
            .run(4, &EventSink::none(), None, |id, ()| {
                Box::pin(async move {
                    if id == "a" {
                        return Err(CloudError::http("nova", "x", 400, "bad", None).into());
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    Ok(())
                })
            })
            .await;
        assert_eq!(report.finished, ids(&["slow"]));
        assert_eq!(report.failed.len(), 1);
        assert_eq!(report.skipped, ids(&["b", "c"]));
        assert!(report.into_result().is_err());
    }

    #[tokio::test]
    async fn cancel_stops_new_steps() {
        let (tx, rx) = watch::channel(false);
        let mut dag = Dag::new();
        dag.add("first", "", &[], ());
        dag.add("second", "", &ids(&["first"]), ());
        let tx = Arc::new(tx);
        let t = tx.clone();
        let report = dag
            .run(1, &EventSink::none(), Some(rx), move |_, ()| {
                let t = t.clone();
                Box::pin(async move {
                    t.send(true).unwrap();
                    Ok(())
                })
            })
            .await;
        assert_eq!(report.finished, ids(&["first"]));
        assert_eq!(report.skipped, ids(&["second"]));
        assert!(matches!(report.into_result(), Err(Error::Interrupted)));
    }
}
