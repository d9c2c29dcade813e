//! `kuryr man --out-dir DIR`: man pages generated from the command definitions, `kuryr.1`
//! and one `kuryr-COMMAND.1` per subcommand, as `make install` puts them in man1.
use anyhow::Context;
use clap::{Args, CommandFactory};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args, Debug)]
#[command(after_help = "Examples:
  kuryr man --out-dir /usr/local/share/man/man1
  kuryr man --out-dir /tmp/man && man -l /tmp/man/kuryr-network.1")]
pub struct Man {
    /// Where to write the pages (created if missing).
    #[arg(long, value_name = "DIR")]
    out_dir: PathBuf,
}

fn render(cmd: clap::Command) -> anyhow::Result<Vec<u8>> {
    let mut page = Vec::new();
    clap_mangen::Man::new(cmd)
        .render(&mut page)
        .context("render a man page")?;
    Ok(page)
}

impl Man {
    pub fn exec(self) -> anyhow::Result<ExitCode> {
        std::fs::create_dir_all(&self.out_dir)
            .with_context(|| format!("create {}", self.out_dir.display()))?;
        let cmd = crate::Cli::command();
        let mut pages = vec![("kuryr".to_string(), render(cmd.clone())?)];
        for sub in cmd.get_subcommands() {
            let name = format!("kuryr-{}", sub.get_name());
            pages.push((name.clone(), render(sub.clone().name(name))?));
        }
        let mut written = String::new();
        for (name, page) in pages {
            let path = self.out_dir.join(format!("{name}.1"));
            std::fs::write(&path, page).with_context(|| format!("write {}", path.display()))?;
            written.push_str(&format!("{}\n", path.display()));
        }
        // The list of pages; a reader that went away (`| head`) is no error.
        match std::io::stdout().write_all(written.as_bytes()) {
            Ok(()) => Ok(ExitCode::SUCCESS),
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(ExitCode::SUCCESS),
            Err(e) => Err(anyhow::Error::new(e).context("write the list of pages")),
        }
    }
}
