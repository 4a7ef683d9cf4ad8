//! `zhengyun-devidp`: see the library's documentation.

fn main() -> std::process::ExitCode {
    zhengyun_devidp::cli::Args::parse_and_run()
}
