//! The `c7sync` binary: parse the command line, set up logging, dispatch.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use c7sync::cli::{self, Cli, LogFormat};

fn init_tracing(format: LogFormat, default_level: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new(format!("{default_level},sqlx=warn,hyper=warn,reqwest=warn,graph_http=warn"))
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Text => builder.with_target(false).fmt_fields(c7sync::log::text_fields()).init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Buffers of at least this size are mapped on their own and unmapped when freed.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const OWN_MAPPING_FROM_BYTES: libc::c_int = 1 << 20;

/// glibc serves a buffer above its threshold (128 KiB at first) from a mapping of its own and
/// returns it at once when freed, but raises the threshold to the size of each such buffer
/// freed, up to 32 MiB; after that, the large buffers of reading and planning a big file come
/// from the threads' arenas, where freed space is kept and not shared between arenas. A 1M-row
/// import then peaked at 232-250 MiB, depending on which threads its allocations fell to; with
/// the threshold fixed, at 212 MiB every time, in the same time (BENCHMARKS.md).
#[allow(unsafe_code)]
fn fix_the_mapping_threshold() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: called first thing in `main`, before any other thread exists or allocates.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, OWN_MAPPING_FROM_BYTES);
    }
}

fn main() -> ExitCode {
    fix_the_mapping_threshold();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let cli = Cli::parse();
        init_tracing(cli.log_format, cli.default_log_level());
        cli::run(cli).await.into()
    })
}
