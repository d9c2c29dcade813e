//! One module per subcommand; each is a clap struct with an `exec()`.
pub mod version;

use clap::Subcommand;
use std::process::ExitCode;

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Print the version and the git commit this binary was built from.
    Version(version::Version),
}

impl Command {
    pub fn exec(self) -> anyhow::Result<ExitCode> {
        match self {
            Command::Version(cmd) => cmd.exec(),
        }
    }
}
