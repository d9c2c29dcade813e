//! `kuryr version`.
use crate::output::Format;
use clap::Args;
use serde::Serialize;
use std::process::ExitCode;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");
pub const COMMIT: &str = env!("KURYR_GIT_COMMIT");
pub const VERSION_LINE: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("KURYR_GIT_COMMIT"),
    ")"
);

#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  kuryr version\n  kuryr version --format json")]
pub struct Version {
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

#[derive(Serialize)]
struct Info {
    version: &'static str,
    commit: &'static str,
    /// The target triple the binary was built for.
    target: &'static str,
    rustc: &'static str,
    /// UTC, `YYYY-MM-DD`.
    build_date: &'static str,
}

impl Version {
    pub fn exec(self) -> anyhow::Result<ExitCode> {
        let info = Info {
            version: VERSION,
            commit: COMMIT,
            target: env!("KURYR_TARGET"),
            rustc: env!("KURYR_RUSTC"),
            build_date: env!("KURYR_BUILD_DATE"),
        };
        match self.format {
            Format::Table => println!("kuryr {} (commit {})", info.version, info.commit),
            Format::Json => println!("{}", serde_json::to_string(&info)?),
        }
        Ok(ExitCode::SUCCESS)
    }
}
