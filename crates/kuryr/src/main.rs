//! `kuryr`: Docker network and IPAM driver for OVN and OpenStack Neutron.
mod commands;
mod output;

use clap::Parser;

#[derive(Parser, Debug)]
#[command(
    name = "kuryr",
    version = commands::version::VERSION_LINE,
    about = "Docker network and IPAM driver for OVN and OpenStack Neutron",
    propagate_version = true
)]
struct Cli {
    #[command(subcommand)]
    command: commands::Command,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match cli.command.exec() {
        Ok(code) => code,
        Err(err) => {
            eprintln!("kuryr: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
