//! `make bench`'s benchmarks against the devcluster, one binary for all of them (each would
//! otherwise be linked across the whole tree on its own):
//!
//! ```text
//! bench converge [N ...]
//! bench api [clients] [reads-per-client] [writes-per-client]
//! bench borrowing
//! bench console [rounds [page]]
//! ```
//!
//! Each writes its figures to `target/bench/<name>.json`; see each module for what it measures
//! and `docs/performance.md` for the current figures.

mod api;
mod borrowing;
mod console;
mod converge;

const USAGE: &str = "usage: bench converge|api|borrowing|console [ARGS...]";

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((name, rest)) = args.split_first() else {
        anyhow::bail!("{USAGE}");
    };
    let runtime = tokio::runtime::Runtime::new()?;
    match name.as_str() {
        "converge" => runtime.block_on(converge::main(rest)),
        "api" => runtime.block_on(api::main(rest)),
        "borrowing" => runtime.block_on(borrowing::main(rest)),
        "console" => runtime.block_on(console::main(rest)),
        other => anyhow::bail!("no benchmark {other:?}; {USAGE}"),
    }
}
