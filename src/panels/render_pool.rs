//! Drawing charts and heatmaps costs milliseconds of CPU per picture (PNG more): it runs on
//! Tokio's blocking pool, at most two pictures per core at a time, so a burst of chart
//! requests queues there instead of holding the async workers that serve everything else.

use std::sync::OnceLock;

use tokio::sync::Semaphore;

use crate::render::RenderError;

fn slots() -> &'static Semaphore {
    static SLOTS: OnceLock<Semaphore> = OnceLock::new();
    SLOTS.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Semaphore::new(2 * cores)
    })
}

/// Runs `draw` off the async workers.
pub async fn off_workers<T: Send + 'static>(
    draw: impl FnOnce() -> Result<T, RenderError> + Send + 'static,
) -> Result<T, RenderError> {
    let _slot = slots()
        .acquire()
        .await
        .map_err(|e| RenderError::Template(format!("render pool: {e}")))?;
    tokio::task::spawn_blocking(draw)
        .await
        .map_err(|e| RenderError::Template(format!("render task: {e}")))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn drawing_runs_off_the_calling_thread() {
        let caller = std::thread::current().id();
        let drew_on = off_workers(|| Ok(std::thread::current().id()))
            .await
            .unwrap();
        assert_ne!(drew_on, caller);
        let err = off_workers::<()>(|| Err(RenderError::BadOption("w".into())))
            .await
            .unwrap_err();
        assert!(matches!(err, RenderError::BadOption(_)));
    }
}
