//! `zhengyun`: the one binary of Zhengyun.

/// jemalloc instead of the C library's allocator. A long-running operator allocates and frees a
/// metering window's worth of memory at every close; glibc's arenas kept what such closes freed
/// fragmented and resident, so the operator's memory grew with each close, where jemalloc
/// reuses it and returns what stays unused to the system (see docs/performance.md).
///
/// It serves the C code linked in as well: `tikv-jemallocator` is built with
/// `unprefixed_malloc_on_supported_platforms`, so SQLite's `malloc` and `free` are jemalloc's
/// too, its freed pages returned on the same schedule as the operator's own, rather than kept
/// in the C library's arenas.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    zhengyun::Cli::parse_and_run()
}
