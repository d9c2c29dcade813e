//! `kuryr bench`: measures a network+IPAM plugin at the protocol level, at scale and end to
//! end with Docker, and prints tables (or JSON), a comparison with an earlier run, and plots.
use anyhow::Context;
use clap::{Args, ValueEnum};
use kuryr_bench::docker::DockerBench;
use kuryr_bench::report::Machine;
use kuryr_bench::{BenchReport, PluginAddr};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Part {
    /// Docker's call sequences over the plugin socket: network create/delete and the endpoint lifecycle.
    Protocol,
    /// N endpoints on one network against a daemon this command starts (no host binding).
    Scale,
    /// `docker run` on none, bridge and a kuryr network (and kuryr-libnetwork's, if given).
    Docker,
    /// All of the above.
    All,
}

#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  kuryr bench protocol\n  kuryr bench protocol --plugin http://127.0.0.1:23750 --concurrency 1,8\n  kuryr bench scale --endpoints 10000\n  kuryr bench docker --runs 10 --libnetwork-driver kuryr-libnetwork\n  kuryr bench all --out bench.json --svg-dir docs/bench\n  kuryr bench protocol --compare bench.json"
)]
pub struct Bench {
    /// What to measure.
    #[arg(value_enum, default_value_t = Part::All)]
    part: Part,
    /// The plugin: its unix socket, or http://HOST:PORT.
    #[arg(long, default_value = "/run/docker/plugins/kuryr.sock")]
    plugin: String,
    /// Subnet of the protocol benchmark's network.
    #[arg(long, default_value = "10.240.0.0/16")]
    subnet: String,
    /// Concurrency levels of the endpoint lifecycle, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,8,64")]
    concurrency: Vec<usize>,
    /// Endpoint lifecycles per concurrency level.
    #[arg(long, default_value_t = 200)]
    lifecycles: usize,
    /// Network create/delete rounds.
    #[arg(long, default_value_t = 20)]
    networks: usize,
    /// Endpoints of the scale benchmark.
    #[arg(long, default_value_t = 10_000)]
    endpoints: usize,
    /// Endpoints per reported batch in the scale benchmark.
    #[arg(long, default_value_t = 1_000)]
    batch: usize,
    /// Northbound the scale benchmark's daemon uses.
    #[arg(long, default_value = "unix:/var/run/ovn/ovnnb_db.sock")]
    nb: String,
    /// Subnet of the scale benchmark's network.
    #[arg(long, default_value = "10.224.0.0/16")]
    scale_subnet: String,
    /// `docker run`s per network in the end-to-end benchmark.
    #[arg(long, default_value_t = 10)]
    runs: usize,
    /// Containers started at once in the end-to-end benchmark.
    #[arg(long, default_value_t = 8)]
    parallel: usize,
    /// Leave out the runs with a published port (`-p`), e.g. inside a VM, where kuryr
    /// publishes none.
    #[arg(long)]
    no_publish: bool,
    /// Docker network driver (and IPAM driver) of the kuryr network.
    #[arg(long, default_value = "kuryr")]
    driver: String,
    /// Also measure a kuryr-libnetwork network with this driver name.
    #[arg(long)]
    libnetwork_driver: Option<String>,
    #[arg(long, default_value = "10.241.0.0/24")]
    libnetwork_subnet: String,
    /// Also measure a network of another kuryr daemon, as LABEL=DRIVER (e.g. `"kuryr pools
    /// off=kuryr-nopool"`); repeatable.
    #[arg(long = "compare-driver", value_name = "LABEL=DRIVER")]
    compare_drivers: Vec<String>,
    /// The kuryr daemon's metrics address (HOST:PORT, `[DEFAULT] metrics_address`): report
    /// its port pool hits and misses over the end-to-end runs.
    #[arg(long, value_name = "HOST:PORT")]
    pool_metrics: Option<String>,
    /// Image for the end-to-end benchmark.
    #[arg(long, default_value = "kuryr-busybox:latest")]
    image: String,
    /// Print JSON instead of tables.
    #[arg(long)]
    json: bool,
    /// Also write the JSON report here.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Print the change against an earlier JSON report.
    #[arg(long, value_name = "FILE")]
    compare: Option<PathBuf>,
    /// Write SVG plots (scale.svg, docker.svg) into this folder.
    #[arg(long, value_name = "DIR")]
    svg_dir: Option<PathBuf>,
}

impl Bench {
    pub fn exec(self) -> anyhow::Result<ExitCode> {
        let plugin: PluginAddr = self.plugin.parse()?;
        let old: Option<BenchReport> =
            match &self.compare {
                Some(p) => {
                    let text = std::fs::read_to_string(p)
                        .with_context(|| format!("read {}", p.display()))?;
                    Some(serde_json::from_str(&text).with_context(|| {
                        format!("{} is not a kuryr bench JSON report", p.display())
                    })?)
                }
                None => None,
            };
        if self.concurrency.contains(&0)
            || self.lifecycles == 0
            || self.batch == 0
            || self.runs == 0
            || self.parallel == 0
        {
            anyhow::bail!(
                "--concurrency, --lifecycles, --batch, --runs and --parallel must be at least 1"
            );
        }
        let version = format!("kuryr {}", super::version::VERSION_LINE);
        let mut report = BenchReport {
            machine: Machine::here(&version),
            ..Default::default()
        };
        let all = self.part == Part::All;
        let runtime = tokio::runtime::Runtime::new().context("start the async runtime")?;
        if all || self.part == Part::Protocol {
            eprintln!("bench: protocol level against {plugin} ...");
            report.protocol = Some(
                runtime
                    .block_on(kuryr_bench::protocol::run(
                        &plugin,
                        &self.subnet,
                        &self.concurrency,
                        self.lifecycles,
                        self.networks,
                    ))
                    .context("protocol benchmark")?,
            );
        }
        if all || self.part == Part::Scale {
            eprintln!("bench: scale, {} endpoints ...", self.endpoints);
            let exe = std::env::current_exe().context("find the kuryr binary")?;
            report.scale = Some(
                runtime
                    .block_on(kuryr_bench::scale::run(
                        &exe,
                        &self.nb,
                        self.endpoints,
                        self.batch,
                        &self.scale_subnet,
                    ))
                    .context("scale benchmark")?,
            );
        }
        if all || self.part == Part::Docker {
            eprintln!(
                "bench: end to end with Docker, {} runs per network ...",
                self.runs
            );
            let mut drivers = vec![(
                "kuryr".to_string(),
                self.driver.clone(),
                "10.242.0.0/24".to_string(),
            )];
            if let Some(d) = &self.libnetwork_driver {
                drivers.push((
                    "kuryr-libnetwork".to_string(),
                    d.clone(),
                    self.libnetwork_subnet.clone(),
                ));
            }
            for (i, spec) in self.compare_drivers.iter().enumerate() {
                let (label, driver) = spec
                    .split_once('=')
                    .filter(|(l, d)| !l.trim().is_empty() && !d.trim().is_empty())
                    .with_context(|| format!("--compare-driver {spec:?}: expected LABEL=DRIVER"))?;
                if i >= 10 {
                    anyhow::bail!("--compare-driver: at most 10 drivers");
                }
                drivers.push((
                    label.trim().to_string(),
                    driver.trim().to_string(),
                    format!("10.243.{i}.0/24"),
                ));
            }
            let cfg = DockerBench {
                image: self.image.clone(),
                runs: self.runs,
                drivers,
                parallel: self.parallel,
                publish: !self.no_publish,
                pool_metrics: self.pool_metrics.clone(),
            };
            report.docker = Some(kuryr_bench::docker::run(&cfg).context("end-to-end benchmark")?);
        }
        let json = serde_json::to_string_pretty(&report)?;
        if let Some(p) = &self.out {
            std::fs::write(p, &json).with_context(|| format!("write {}", p.display()))?;
        }
        if let Some(dir) = &self.svg_dir {
            std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
            for (name, svg) in [
                ("scale.svg", report.scale_svg()),
                ("docker.svg", report.docker_svg()),
            ] {
                if let Some(svg) = svg {
                    let p = dir.join(name);
                    std::fs::write(&p, svg).with_context(|| format!("write {}", p.display()))?;
                }
            }
        }
        if self.json {
            println!("{json}");
        } else {
            print!("{}", report.to_table());
        }
        if let Some(old) = old {
            println!(
                "\ncompared with {}:",
                self.compare
                    .as_deref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default()
            );
            print!("{}", report.compare(&old));
        }
        Ok(ExitCode::SUCCESS)
    }
}

#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  kuryr conformance\n  kuryr conformance --plugin http://127.0.0.1:23750 --format json"
)]
pub struct Conformance {
    /// The plugin: its unix socket, or http://HOST:PORT.
    #[arg(long, default_value = "/run/docker/plugins/kuryr.sock")]
    plugin: String,
    /// Subnet for the networks the checks create.
    #[arg(long, default_value = "10.243.0.0/24")]
    subnet: String,
    #[arg(long, value_enum, default_value_t)]
    format: crate::output::Format,
}

impl Conformance {
    pub fn exec(self) -> anyhow::Result<ExitCode> {
        let plugin: PluginAddr = self.plugin.parse()?;
        let runtime = tokio::runtime::Runtime::new().context("start the async runtime")?;
        let report = runtime
            .block_on(kuryr_bench::conformance::run(&plugin, &self.subnet))
            .context("conformance checks")?;
        match self.format {
            crate::output::Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
            crate::output::Format::Table => {
                let full = BenchReport {
                    conformance: Some(report.clone()),
                    ..Default::default()
                };
                let text = full.to_table();
                print!(
                    "{}",
                    text.split_once('\n')
                        .map(|(_, rest)| rest.trim_start())
                        .unwrap_or(&text)
                );
            }
        }
        Ok(if report.must_failures() == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        })
    }
}
