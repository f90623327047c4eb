//! Each query's cost, added to its tenant's usage when its stream ends or is dropped (a client
//! that hangs up still pays for what ran): one query, its wall time from admission, the
//! compute time its operators report (`elapsed_compute`, summed over the plan — the CPU it
//! took, without waiting), and the Parquet bytes it read (`bytes_scanned`).

use std::sync::Arc;
use std::time::Instant;

use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{ExecutionPlan, SendableRecordBatchStream};
use futures::StreamExt;

use crate::usage::{Counter, TenantUsage};

/// `stream` (of `plan`), counting into `usage` once it is done with.
pub(super) fn metered(
    stream: SendableRecordBatchStream,
    plan: Arc<dyn ExecutionPlan>,
    usage: Arc<TenantUsage>,
    started: Instant,
) -> SendableRecordBatchStream {
    let schema = stream.schema();
    let cost = Cost {
        plan,
        usage,
        started,
    };
    let stream = stream.map(move |batch| {
        let _ = &cost;
        batch
    });
    Box::pin(RecordBatchStreamAdapter::new(schema, stream))
}

struct Cost {
    plan: Arc<dyn ExecutionPlan>,
    usage: Arc<TenantUsage>,
    started: Instant,
}

impl Drop for Cost {
    fn drop(&mut self) {
        let (compute_ns, scanned) = totals(self.plan.as_ref());
        let wall = self.started.elapsed().as_micros().min(u128::from(u64::MAX)) as u64;
        self.usage.add(Counter::Queries, 1);
        self.usage.add(Counter::QueryWallMicros, wall);
        self.usage.add(Counter::QueryCpuMicros, compute_ns / 1_000);
        self.usage.add(Counter::ScannedBytes, scanned);
    }
}

/// Compute nanoseconds and Parquet bytes read, over every operator of `plan`.
fn totals(plan: &dyn ExecutionPlan) -> (u64, u64) {
    let (mut compute, mut scanned) = (0u64, 0u64);
    if let Some(metrics) = plan.metrics() {
        compute += metrics.elapsed_compute().unwrap_or(0) as u64;
        scanned += metrics
            .sum_by_name("bytes_scanned")
            .map(|v| v.as_usize() as u64)
            .unwrap_or(0);
    }
    for child in plan.children() {
        let (c, s) = totals(child.as_ref());
        compute += c;
        scanned += s;
    }
    (compute, scanned)
}
