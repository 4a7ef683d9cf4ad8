//! `zhengyun`: the one binary of Zhengyun.

fn main() -> std::process::ExitCode {
    zhengyun::Cli::parse_and_run()
}
