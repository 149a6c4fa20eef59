//! Progress as a stream of typed events. The CLI renders them as a live
//! display on a terminal and as JSON lines with `--output json`; library
//! users subscribe with [`EventSink::channel`].

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

/// What a plan will do, in numbers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PlanSummary {
    /// Resources to create.
    pub create: usize,
    /// Resources already as the spec wants them.
    pub keep: usize,
    /// Resources to delete and create again.
    pub replace: usize,
    /// Resources to delete.
    pub delete: usize,
}

/// One thing that happened during an operation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Event {
    /// An operation (`apply`, `destroy`, `scale`) began.
    Started {
        /// `apply`, `destroy` or `scale`.
        operation: String,
        /// The cluster name.
        cluster: String,
    },
    /// The plan was computed.
    Planned {
        /// What the plan will do.
        summary: PlanSummary,
    },
    /// A step of the DAG began.
    StepStarted {
        /// The step id (`servers/service`).
        step: String,
        /// What the step does, for people.
        description: String,
    },
    /// Free-form progress inside a step (`12/64 servers ACTIVE`).
    StepProgress {
        /// The step id.
        step: String,
        /// What is happening.
        message: String,
        /// Units done so far, when countable.
        done: Option<u64>,
        /// Units in all, when countable.
        total: Option<u64>,
    },
    /// A retriable error; the step will try again after `delay_ms`.
    StepRetrying {
        /// The step id.
        step: String,
        /// The attempt that failed (from 1).
        attempt: u32,
        /// How long vre waits before the next attempt.
        delay_ms: u64,
        /// The error of the failed attempt.
        error: String,
    },
    /// A step finished.
    StepFinished {
        /// The step id.
        step: String,
        /// How long it took.
        elapsed_ms: u64,
    },
    /// A step failed (after its retries).
    StepFailed {
        /// The step id.
        step: String,
        /// Why.
        error: String,
    },
    /// A step that did not run because one it depends on failed.
    StepSkipped {
        /// The step id.
        step: String,
        /// The step that failed first.
        because: String,
    },
    /// A resource was created, found, replaced or deleted.
    Resource {
        /// `created`, `ensured`, `ready`, `attached`, `associated` or `deleted`.
        action: String,
        /// The resource kind (`instance`, `volume`, ...).
        kind: String,
        /// The resource name.
        name: String,
        /// The cloud's id.
        id: String,
    },
    /// Nodes registered and Ready so far.
    NodesReady {
        /// Nodes Ready so far.
        ready: usize,
        /// Nodes expected.
        expected: usize,
    },
    /// Something the user should know (a URL, the kubeconfig path).
    Output {
        /// The output name (`kubeconfig`, `endpoint/jupyter`, ...).
        name: String,
        /// Its value.
        value: String,
    },
    /// Something the user should act on or know about.
    Warning {
        /// The warning, for people.
        message: String,
    },
    /// An operation ended.
    Finished {
        /// `apply`, `destroy` or `scale`.
        operation: String,
        /// It succeeded.
        ok: bool,
        /// How long it took.
        elapsed_ms: u64,
    },
}

/// Where events go. Cheap to clone; emitting never blocks or fails.
#[derive(Clone, Debug, Default)]
pub struct EventSink {
    tx: Option<mpsc::UnboundedSender<Event>>,
}

impl EventSink {
    /// Events are dropped.
    pub fn none() -> Self {
        EventSink { tx: None }
    }

    /// A sink and the receiver that gets its events.
    pub fn channel() -> (Self, mpsc::UnboundedReceiver<Event>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (EventSink { tx: Some(tx) }, rx)
    }

    /// Sends an event (and logs it at debug level).
    pub fn emit(&self, event: Event) {
        tracing::debug!(?event, "event");
        if let Some(tx) = &self.tx {
            let _ = tx.send(event);
        }
    }

    /// Free-form progress inside `step`.
    pub fn progress(&self, step: &str, message: impl Into<String>) {
        self.emit(Event::StepProgress {
            step: step.to_string(),
            message: message.into(),
            done: None,
            total: None,
        });
    }

    /// Counted progress inside `step` (`done` of `total`).
    pub fn count(&self, step: &str, message: impl Into<String>, done: u64, total: u64) {
        self.emit(Event::StepProgress {
            step: step.to_string(),
            message: message.into(),
            done: Some(done),
            total: Some(total),
        });
    }

    /// A warning.
    pub fn warn(&self, message: impl Into<String>) {
        self.emit(Event::Warning {
            message: message.into(),
        });
    }
}

/// Progress of one engine step, handed to a provider for the work it does
/// inside that step: the provider reports without knowing the step's id.
#[derive(Clone, Debug, Default)]
pub struct StepProgress {
    sink: EventSink,
    step: String,
}

impl StepProgress {
    /// Progress of `step` into `sink`.
    pub fn new(sink: EventSink, step: impl Into<String>) -> Self {
        StepProgress {
            sink,
            step: step.into(),
        }
    }

    /// Progress that goes nowhere (tests, library calls outside a step).
    pub fn none() -> Self {
        StepProgress::default()
    }

    /// A free-form message (`creating 64 service servers in one request`).
    pub fn message(&self, message: impl Into<String>) {
        self.sink.progress(&self.step, message);
    }

    /// A count towards a total (`12/64 servers ACTIVE`).
    pub fn count(&self, message: impl Into<String>, done: u64, total: u64) {
        self.sink.count(&self.step, message, done, total);
    }

    /// Something the user should know, outside the step's progress line.
    pub fn warn(&self, message: impl Into<String>) {
        self.sink.warn(message);
    }
}
