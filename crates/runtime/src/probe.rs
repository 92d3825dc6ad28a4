//! Readiness and liveness of a component, as `/-/healthy`, `/-/ready` and the gRPC health service
//! report them. The component says when it is ready; shutdown makes it not ready again.

use std::sync::Arc;

use tokio::sync::watch;

/// What the probes report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProbeState {
    /// Up, but not ready to serve; the reason says what is missing.
    NotReady(String),
    /// Serving.
    Ready,
}

/// Shared probe state: cheap to clone, safe to update from any task.
#[derive(Clone, Debug)]
pub struct Prober {
    state: Arc<watch::Sender<ProbeState>>,
}

impl Prober {
    /// A prober that starts not ready.
    pub fn new() -> Self {
        let (tx, _) = watch::channel(ProbeState::NotReady("starting".into()));
        Self {
            state: Arc::new(tx),
        }
    }

    /// Marks the component ready: `/-/ready` answers 200 and gRPC health says SERVING.
    pub fn ready(&self) {
        self.state.send_replace(ProbeState::Ready);
    }

    /// Marks the component not ready, with the reason `/-/ready` shows.
    pub fn not_ready(&self, reason: impl Into<String>) {
        self.state.send_replace(ProbeState::NotReady(reason.into()));
    }

    /// The current state.
    pub fn state(&self) -> ProbeState {
        self.state.borrow().clone()
    }

    /// Whether the component is ready.
    pub fn is_ready(&self) -> bool {
        matches!(*self.state.borrow(), ProbeState::Ready)
    }

    /// A receiver that sees every change, for servers that mirror the state.
    pub fn subscribe(&self) -> watch::Receiver<ProbeState> {
        self.state.subscribe()
    }
}

impl Default for Prober {
    fn default() -> Self {
        Self::new()
    }
}
