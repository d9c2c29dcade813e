//! One module per subcommand; each is a clap struct with an `exec()`.
pub mod daemon;
pub mod version;

use clap::Subcommand;
use std::process::ExitCode;

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Serve Docker's network and IPAM plugin API (the driver).
    Daemon(daemon::Daemon),
    /// Print the version and the git commit this binary was built from.
    Version(version::Version),
}

impl Command {
    pub fn exec(self) -> anyhow::Result<ExitCode> {
        match self {
            Command::Daemon(cmd) => cmd.exec(),
            Command::Version(cmd) => cmd.exec(),
        }
    }
}
