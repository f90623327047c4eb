//! The process's memory allocator, declared by the library so that every binary linking it —
//! the server, the benches' in-process servers, the tests — runs on the allocator that ships
//! (the panels bench, whose server is in-process, was measuring glibc malloc: 14 % of its CPU
//! in malloc/free on uncached dashboards). jemalloc by default; the `mimalloc` and
//! `system-allocator` features are trials for benches/memory.py.

#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[cfg(all(unix, not(feature = "mimalloc"), not(feature = "system-allocator")))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's settings: a background thread purges freed pages after a second, so resident
/// memory falls back after a burst of writes or a big query instead of staying at the peak
/// (the glibc allocator kept it there). `_RJEM_MALLOC_CONF` in the environment overrides.
#[cfg(all(unix, not(feature = "mimalloc"), not(feature = "system-allocator")))]
#[allow(non_upper_case_globals)]
#[unsafe(export_name = "_rjem_malloc_conf")]
#[used]
pub static malloc_conf: &[u8] = b"background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0\0";
