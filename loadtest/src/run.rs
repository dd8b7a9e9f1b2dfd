//! A whole run: deliver, then read back over each protocol asked for, into one report.

use crate::report::{Report, SizeSummary};
use crate::retrieve::{self, Protocol};
use crate::{deliver, plan::Plan};

/// Which phases to run.
#[derive(Debug, Clone)]
pub struct Steps {
    /// Deliver first; without it every message is assumed delivered (by an earlier run with
    /// the same seed, tag and counts).
    pub deliver: bool,
    /// Then read back over these, in order.
    pub retrieve: Vec<Protocol>,
}

/// Runs `steps` and reports under `label`.
pub fn execute(plan: &Plan, steps: &Steps, label: &str) -> Report {
    let sizes = (0..plan.messages).map(|index| plan.corpus.plan(index).0 as u64).collect();
    let mut report = Report {
        label: label.to_owned(),
        tag: plan.corpus.tag().to_owned(),
        seed: plan.corpus.seed(),
        messages: plan.messages,
        connections: plan.connections,
        users: plan.accounts.count,
        size_max: plan.corpus.size_max(),
        sizes: SizeSummary::of(sizes),
        phases: Vec::new(),
        errors_total: 0,
    };
    let acknowledged = if steps.deliver {
        let (phase, acknowledged) = deliver::deliver(plan);
        report.phases.push(phase);
        acknowledged
    } else {
        vec![true; usize::try_from(plan.messages).unwrap_or(usize::MAX)]
    };
    for protocol in &steps.retrieve {
        report.phases.push(retrieve::retrieve(plan, *protocol, &acknowledged));
    }
    report.errors_total = report.phases.iter().map(crate::phase::PhaseReport::error_count).sum();
    report
}
