//! The running cloud: its state behind one lock, and the three tasks that
//! act on it besides requests: the timer wheel (builds, deletions, volume
//! and image transitions), machine event delivery, and debounced saving.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{Notify, mpsc, watch};

use super::clock::Micros;
use super::faults::RateLimiter;
use super::keystone::Identity;
use super::state::{CloudState, MachineEvent};
use super::{CloudTimings, Timer};
use crate::{MachineEvents, SimConfig, SimError, SimStats};

/// Scaled durations for code that only has the state at hand.
#[derive(Clone, Debug)]
pub(crate) struct Pace {
    pub time_scale: f64,
    pub timings: CloudTimings,
}

impl Default for Pace {
    fn default() -> Self {
        Pace {
            time_scale: 1.0,
            timings: CloudTimings::default(),
        }
    }
}

impl Pace {
    /// `now` plus a simulated duration.
    pub(crate) fn after(&self, now: Micros, d: Duration) -> Micros {
        now.plus(d.mul_f64(self.time_scale.max(0.0)))
    }
}

pub(crate) struct Cloud {
    /// `http://127.0.0.1:<port>`.
    pub base_url: String,
    pub config: Arc<SimConfig>,
    pub stats: Arc<SimStats>,
    pub identity: Identity,
    pub timings: CloudTimings,
    pub limiter: RateLimiter,
    /// Numbers the requests (`X-OpenStack-Request-ID`).
    pub request_counter: AtomicU64,
    state: Mutex<CloudState>,
    timers: Mutex<BinaryHeap<Reverse<(Micros, u64, Timer)>>>,
    timer_seq: AtomicU64,
    timer_wake: Notify,
    events: mpsc::UnboundedSender<MachineEvent>,
    dirty: AtomicBool,
    save_wake: Notify,
    state_file: Option<PathBuf>,
    /// Serializes writers of the state file.
    save_lock: tokio::sync::Mutex<()>,
}

impl Cloud {
    pub(crate) fn new(
        base_url: String,
        config: Arc<SimConfig>,
        stats: Arc<SimStats>,
        identity: Identity,
        timings: CloudTimings,
        state: CloudState,
        state_file: Option<PathBuf>,
    ) -> (Arc<Cloud>, mpsc::UnboundedReceiver<MachineEvent>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let limiter = RateLimiter::new(config.rate_limit.as_ref());
        let timers: Vec<_> = state.pending_timers();
        let cloud = Arc::new(Cloud {
            base_url,
            config,
            stats,
            identity,
            timings,
            limiter,
            request_counter: AtomicU64::new(0),
            state: Mutex::new(state),
            timers: Mutex::new(BinaryHeap::new()),
            timer_seq: AtomicU64::new(0),
            timer_wake: Notify::new(),
            events: tx,
            dirty: AtomicBool::new(false),
            save_wake: Notify::new(),
            state_file,
            save_lock: tokio::sync::Mutex::new(()),
        });
        cloud.add_timers(timers);
        (cloud, rx)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CloudState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Reads the state.
    pub(crate) fn read<R>(&self, f: impl FnOnce(&CloudState) -> R) -> R {
        f(&self.lock())
    }

    /// Changes the state; then schedules its new timers, queues its machine
    /// events (in order) and marks it for saving.
    pub(crate) fn write<R>(&self, f: impl FnOnce(&mut CloudState) -> R) -> R {
        let (result, timers) = {
            let mut state = self.lock();
            let result = f(&mut state);
            for event in state.outbox.events.drain(..) {
                // The receiver lives as long as the server; after shutdown
                // nobody listens and events are moot.
                let _ = self.events.send(event);
            }
            (result, std::mem::take(&mut state.outbox.timers))
        };
        self.add_timers(timers);
        self.dirty.store(true, Ordering::Release);
        self.save_wake.notify_one();
        result
    }

    /// Tells the machine side every booted machine, first of all events:
    /// after a start on saved state it reconciles with them (it may have
    /// missed events around the last shutdown).
    pub(crate) fn resync_machines(&self) {
        let running = self.read(CloudState::booted_machines);
        let _ = self.events.send(MachineEvent::Resync(running));
    }

    /// Changes only bookkeeping (the fault dice): not worth a save.
    pub(crate) fn write_quiet<R>(&self, f: impl FnOnce(&mut CloudState) -> R) -> R {
        f(&mut self.lock())
    }

    fn add_timers(&self, timers: Vec<(Micros, Timer)>) {
        if timers.is_empty() {
            return;
        }
        let mut heap = self.timers.lock().unwrap_or_else(PoisonError::into_inner);
        for (at, timer) in timers {
            let seq = self.timer_seq.fetch_add(1, Ordering::Relaxed);
            heap.push(Reverse((at, seq, timer)));
        }
        drop(heap);
        self.timer_wake.notify_one();
    }

    /// Runs due timers until `shutdown` turns true.
    pub(crate) async fn run_timers(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        loop {
            let now = Micros::now();
            let (due, next) = {
                let mut heap = self.timers.lock().unwrap_or_else(PoisonError::into_inner);
                let mut due = Vec::new();
                while heap.peek().is_some_and(|Reverse((at, _, _))| *at <= now) {
                    if let Some(Reverse((_, _, timer))) = heap.pop() {
                        due.push(timer);
                    }
                }
                (due, heap.peek().map(|Reverse((at, _, _))| *at))
            };
            if !due.is_empty() {
                self.write(|s| {
                    for timer in &due {
                        super::fire(s, timer, now);
                    }
                });
            }
            let wait = next.map_or(Duration::from_secs(3600), |at| at.until(Micros::now()));
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.timer_wake.notified() => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    /// Delivers machine events in the order they happened.
    pub(crate) async fn deliver_events(
        events: Arc<dyn MachineEvents>,
        mut rx: mpsc::UnboundedReceiver<MachineEvent>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        loop {
            let event = tokio::select! {
                e = rx.recv() => e,
                _ = shutdown.changed() => None,
            };
            let Some(event) = event else { return };
            match &event {
                MachineEvent::Booted(m) => events.booted(m),
                MachineEvent::AddressesChanged(m) => events.addresses_changed(m),
                MachineEvent::Deleted(m) => events.deleted(m),
                MachineEvent::Resync(running) => events.resync(running),
            }
        }
    }

    /// Saves the state a little after changes settle (`debounce`).
    pub(crate) async fn run_saver(self: Arc<Self>, debounce: Duration, mut shutdown: watch::Receiver<bool>) {
        if self.state_file.is_none() {
            return;
        }
        loop {
            tokio::select! {
                _ = self.save_wake.notified() => {}
                _ = shutdown.changed() => return,
            }
            tokio::select! {
                _ = tokio::time::sleep(debounce) => {}
                _ = shutdown.changed() => return,
            }
            let started = std::time::Instant::now();
            if let Err(e) = self.save_if_dirty().await {
                tracing::warn!("vre-sim could not save its cloud state: {e}");
            }
            tokio::select! {
                _ = tokio::time::sleep(crate::files::pause_after_save(started.elapsed())) => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    /// Writes the state file if anything changed since the last write.
    pub(crate) async fn save_if_dirty(&self) -> Result<(), SimError> {
        let Some(path) = self.state_file.clone() else {
            return Ok(());
        };
        let _guard = self.save_lock.lock().await;
        if !self.dirty.swap(false, Ordering::AcqRel) {
            return Ok(());
        }
        let bytes = self.read(serde_json::to_vec).map_err(|e| SimError::StateWrite {
            path: path.clone(),
            source: std::io::Error::other(e),
        })?;
        let target = path.clone();
        let result = tokio::task::spawn_blocking(move || crate::files::write_private(&target, |f| f.write_all(&bytes)))
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)));
        result.map_err(|source| {
            self.dirty.store(true, Ordering::Release);
            SimError::StateWrite { path, source }
        })
    }

    /// Marks the state changed (so the next save writes it).
    pub(crate) fn mark_dirty(&self) {
        self.dirty.store(true, Ordering::Release);
    }
}

/// Reads a saved state, if the file exists.
pub(crate) fn load_state(path: &Path) -> Result<Option<CloudState>, SimError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(SimError::StateRead {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let mut state: CloudState = serde_json::from_slice(&bytes).map_err(|source| SimError::StateParse {
        path: path.to_path_buf(),
        source,
    })?;
    state.rebuild_indexes();
    Ok(Some(state))
}
