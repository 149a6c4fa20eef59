//! Progress as a stream of typed events. The CLI renders them as a live
//! display on a terminal and as JSON lines with `--output json`; library
//! users subscribe with [`EventSink::channel`].

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

/// What a plan will do, in numbers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanSummary {
    pub create: usize,
    pub keep: usize,
    pub replace: usize,
    pub delete: usize,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// An operation (`apply`, `destroy`, `scale`) began.
    Started {
        operation: String,
        cluster: String,
    },
    /// The plan was computed.
    Planned {
        summary: PlanSummary,
    },
    StepStarted {
        step: String,
        description: String,
    },
    /// Free-form progress inside a step (`12/64 servers ACTIVE`).
    StepProgress {
        step: String,
        message: String,
        done: Option<u64>,
        total: Option<u64>,
    },
    /// A retriable error; the step will try again after `delay_ms`.
    StepRetrying {
        step: String,
        attempt: u32,
        delay_ms: u64,
        error: String,
    },
    StepFinished {
        step: String,
        elapsed_ms: u64,
    },
    StepFailed {
        step: String,
        error: String,
    },
    /// A step that did not run because one it depends on failed.
    StepSkipped {
        step: String,
        because: String,
    },
    /// A resource was created, found, replaced or deleted.
    Resource {
        action: String,
        kind: String,
        name: String,
        id: String,
    },
    /// Nodes registered and Ready so far.
    NodesReady {
        ready: usize,
        expected: usize,
    },
    /// Something the user should know (a URL, the kubeconfig path).
    Output {
        name: String,
        value: String,
    },
    Warning {
        message: String,
    },
    Finished {
        operation: String,
        ok: bool,
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

    pub fn emit(&self, event: Event) {
        tracing::debug!(?event, "event");
        if let Some(tx) = &self.tx {
            let _ = tx.send(event);
        }
    }

    pub fn progress(&self, step: &str, message: impl Into<String>) {
        self.emit(Event::StepProgress {
            step: step.to_string(),
            message: message.into(),
            done: None,
            total: None,
        });
    }

    pub fn count(&self, step: &str, message: impl Into<String>, done: u64, total: u64) {
        self.emit(Event::StepProgress {
            step: step.to_string(),
            message: message.into(),
            done: Some(done),
            total: Some(total),
        });
    }

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
