//! `kuryr completions SHELL`: shell completion scripts generated from the command definitions.
use clap::{Args, CommandFactory};
use clap_complete::Shell;
use std::io::Write;
use std::process::ExitCode;

#[derive(Args, Debug)]
#[command(after_help = "Examples:
  kuryr completions bash > /etc/bash_completion.d/kuryr
  kuryr completions zsh > \"${fpath[1]}/_kuryr\"
  kuryr completions fish > ~/.config/fish/completions/kuryr.fish")]
pub struct Completions {
    /// bash, zsh, fish, elvish or powershell.
    shell: Shell,
}

impl Completions {
    pub fn exec(self) -> anyhow::Result<ExitCode> {
        let mut cmd = crate::Cli::command();
        // Into memory first: clap_complete panics on a write error such as `| head`.
        let mut script = Vec::new();
        clap_complete::generate(self.shell, &mut cmd, "kuryr", &mut script);
        match std::io::stdout().write_all(&script) {
            Ok(()) => Ok(ExitCode::SUCCESS),
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(ExitCode::SUCCESS),
            Err(e) => Err(anyhow::Error::new(e).context("write the completion script")),
        }
    }
}
