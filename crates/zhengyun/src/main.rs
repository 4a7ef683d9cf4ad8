//! `zhengyun`: the one binary of Zhengyun.

/// jemalloc instead of the C library's allocator. A long-running operator allocates and frees a
/// metering window's worth of memory at every close; glibc's arenas kept what such closes freed
/// fragmented and resident, so the operator's memory grew with each close, where jemalloc
/// reuses it and returns what stays unused to the system (see docs/performance.md).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    zhengyun::Cli::parse_and_run()
}
