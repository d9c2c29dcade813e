//! `kuryr`: Docker network and IPAM driver for OVN and OpenStack Neutron.
mod commands;
mod logging;
mod netns;
mod output;

use clap::Parser;

#[derive(Parser, Debug)]
#[command(
    name = "kuryr",
    version = commands::version::VERSION_LINE,
    about = "Docker network and IPAM driver for OVN and OpenStack Neutron",
    propagate_version = true
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    command: commands::Command,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match cli.command.exec() {
        Ok(code) => code,
        Err(err) => {
            eprintln!("kuryr: {}", one_line(&err));
            std::process::ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, each cause once: many errors already end with
/// their source's text, and printing the chain as is would say it twice.
fn one_line(err: &anyhow::Error) -> String {
    let mut msg = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if msg.contains(&text) {
            continue;
        }
        if !msg.is_empty() {
            msg.push_str(": ");
        }
        msg.push_str(&text);
    }
    msg.replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("read kuryr.conf: {source}")]
    struct Outer {
        #[source]
        source: std::io::Error,
    }

    #[test]
    fn a_cause_already_in_the_message_is_printed_once() {
        let err = anyhow::Error::new(Outer {
            source: std::io::Error::other("gone"),
        });
        assert_eq!(one_line(&err), "read kuryr.conf: gone");
        let err = anyhow::Error::new(std::io::Error::other("inner")).context("outer");
        assert_eq!(one_line(&err), "outer: inner");
    }
}
