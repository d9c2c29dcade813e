//! The benchmark's report: JSON for machines, tables for people, a comparison with an earlier
//! JSON report, and SVG plots.
use crate::conformance;
use crate::docker::DockerReport;
use crate::protocol::ProtocolReport;
use crate::scale::ScaleReport;
use serde::{Deserialize, Serialize};
use std::fmt::Write;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Machine {
    pub cores: usize,
    pub kernel: String,
    pub kuryr: String,
}

impl Machine {
    pub fn here(kuryr: &str) -> Machine {
        Machine {
            cores: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(0),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .unwrap_or_default()
                .trim()
                .to_string(),
            kuryr: kuryr.to_string(),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct BenchReport {
    pub machine: Machine,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<ProtocolReport>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale: Option<ScaleReport>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docker: Option<DockerReport>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conformance: Option<conformance::Report>,
}

fn row(out: &mut String, cells: &[String], widths: &[usize]) {
    for (i, c) in cells.iter().enumerate() {
        let w = widths.get(i).copied().unwrap_or(10);
        if i == 0 {
            let _ = write!(out, "{c:<w$}");
        } else {
            let _ = write!(out, "  {c:>w$}");
        }
    }
    out.push('\n');
}

impl BenchReport {
    /// Aligned tables, one section per part that ran.
    pub fn to_table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "machine: {} cores, kernel {}, {}",
            self.machine.cores, self.machine.kernel, self.machine.kuryr
        );
        if let Some(p) = &self.protocol {
            let _ = writeln!(out, "\nprotocol level ({}): latency in ms", p.plugin);
            let _ = writeln!(
                out,
                "network create p50 {:.2} p99 {:.2}; network delete p50 {:.2} p99 {:.2}",
                p.network_create.p50_ms,
                p.network_create.p99_ms,
                p.network_delete.p50_ms,
                p.network_delete.p99_ms
            );
            let w = [34, 8, 8, 8, 8];
            for l in &p.levels {
                let _ = writeln!(
                    out,
                    "\nconcurrency {}: {} lifecycles, {:.1} lifecycles/s",
                    l.concurrency, l.lifecycles, l.lifecycles_per_s
                );
                row(
                    &mut out,
                    &[
                        "call".into(),
                        "p50".into(),
                        "p95".into(),
                        "p99".into(),
                        "n".into(),
                    ],
                    &w,
                );
                let mut lines: Vec<(String, crate::stats::Summary)> =
                    l.calls.iter().map(|(k, v)| (k.clone(), *v)).collect();
                lines.push(("lifecycle (start + stop)".into(), l.lifecycle));
                lines.push((
                    "lifecycle without the ready wait".into(),
                    l.lifecycle_without_ready_wait,
                ));
                lines.push(("ready (CreateEndpoint..Join)".into(), l.ready));
                for (k, s) in lines {
                    row(
                        &mut out,
                        &[
                            k,
                            format!("{:.2}", s.p50_ms),
                            format!("{:.2}", s.p95_ms),
                            format!("{:.2}", s.p99_ms),
                            s.n.to_string(),
                        ],
                        &w,
                    );
                }
            }
        }
        if let Some(s) = &self.scale {
            let _ = writeln!(
                out,
                "\nscale: {} endpoints on one network (no host binding), per endpoint in ms",
                s.endpoints
            );
            let w = [10, 10, 8, 8, 8, 10];
            row(
                &mut out,
                &[
                    "phase".into(),
                    "endpoints".into(),
                    "p50".into(),
                    "p95".into(),
                    "p99".into(),
                    "RSS MB".into(),
                ],
                &w,
            );
            for (phase, batches) in [("create", &s.create), ("delete", &s.delete)] {
                for b in batches.iter() {
                    row(
                        &mut out,
                        &[
                            phase.into(),
                            b.endpoints.to_string(),
                            format!("{:.2}", b.latency.p50_ms),
                            format!("{:.2}", b.latency.p95_ms),
                            format!("{:.2}", b.latency.p99_ms),
                            format!("{:.1}", b.daemon_rss_mb),
                        ],
                        &w,
                    );
                }
            }
            let _ = writeln!(out, "create p50 at the end / at the start: {:.2}x; daemon RSS {:.1} MB at start, {:.1} MB at peak", s.create_p50_growth, s.daemon_rss_start_mb, s.daemon_rss_peak_mb);
        }
        if let Some(d) = &self.docker {
            let _ = writeln!(out, "\nend to end: docker run --rm --net X IMAGE sh -c true, medians of {} alternated runs", d.runs);
            let w = [14, 10, 12, 12, 14, 12];
            row(
                &mut out,
                &[
                    "network".into(),
                    "run s".into(),
                    "overhead s".into(),
                    "first ping s".into(),
                    format!("{} parallel s", d.parallel),
                    "vs one".into(),
                ],
                &w,
            );
            for (label, m) in &d.run_median_s {
                let f =
                    |v: Option<&f64>| v.map(|v| format!("{v:.3}")).unwrap_or_else(|| "-".into());
                row(
                    &mut out,
                    &[
                        label.clone(),
                        format!("{m:.3}"),
                        f(d.overhead_s.get(label)),
                        f(d.first_ping_s.get(label)),
                        f(d.parallel_wall_s.get(label)),
                        d.parallel_ratio
                            .get(label)
                            .map(|r| format!("{r:.2}x"))
                            .unwrap_or_else(|| "-".into()),
                    ],
                    &w,
                );
            }
            for base in ["bridge", crate::docker::USER_BRIDGE] {
                if let (Some(k), Some(b)) = (d.overhead_s.get("kuryr"), d.overhead_s.get(base)) {
                    let _ = writeln!(
                        out,
                        "kuryr's overhead over none / {base}'s: {:.2}x",
                        if *b > 0.0 { k / b } else { 0.0 }
                    );
                }
            }
            if let Some(p) = &d.pool {
                let _ = writeln!(
                    out,
                    "kuryr's port pools during the runs: {} hits, {} misses",
                    p.hits, p.misses
                );
            }
            // What publishing a port adds to a run, per network.
            for (label, with) in d.run_median_s.iter().filter(|(l, _)| l.ends_with(" -p")) {
                let plain = label.trim_end_matches(" -p");
                if let Some(m) = d.run_median_s.get(plain) {
                    let _ = writeln!(
                        out,
                        "publishing a port (-p) adds to a {plain} run: {:+.3} s",
                        with - m
                    );
                }
            }
            for (label, c) in &d.network_create_s {
                let _ = writeln!(
                    out,
                    "docker network create/rm ({label}): {:.3} s / {:.3} s",
                    c,
                    d.network_rm_s.get(label).copied().unwrap_or(0.0)
                );
            }
        }
        if let Some(c) = &self.conformance {
            let _ = writeln!(
                out,
                "\nconformance ({}): {} checks, {} must-failures, {} should-failures",
                c.plugin,
                c.checks.len(),
                c.must_failures(),
                c.should_failures()
            );
            for ch in &c.checks {
                let mark = if ch.passed {
                    "pass"
                } else if ch.must {
                    "FAIL"
                } else {
                    "warn"
                };
                let _ = writeln!(
                    out,
                    "  {mark}  {}{}",
                    ch.name,
                    if ch.passed {
                        String::new()
                    } else {
                        format!(": {}", ch.detail)
                    }
                );
            }
        }
        out
    }

    /// Key figures of this report beside an earlier one's, with the change.
    pub fn compare(&self, old: &BenchReport) -> String {
        let mut pairs: Vec<(String, f64, f64)> = Vec::new();
        if let (Some(n), Some(o)) = (&self.protocol, &old.protocol) {
            for l in &n.levels {
                if let Some(ol) = o.levels.iter().find(|x| x.concurrency == l.concurrency) {
                    pairs.push((
                        format!("c={} lifecycle p50 ms", l.concurrency),
                        ol.lifecycle.p50_ms,
                        l.lifecycle.p50_ms,
                    ));
                    pairs.push((
                        format!("c={} lifecycle p99 ms", l.concurrency),
                        ol.lifecycle.p99_ms,
                        l.lifecycle.p99_ms,
                    ));
                    pairs.push((
                        format!("c={} lifecycles/s", l.concurrency),
                        ol.lifecycles_per_s,
                        l.lifecycles_per_s,
                    ));
                }
            }
        }
        if let (Some(n), Some(o)) = (&self.scale, &old.scale) {
            pairs.push((
                "scale create p50 growth".into(),
                o.create_p50_growth,
                n.create_p50_growth,
            ));
            pairs.push((
                "scale daemon RSS peak MB".into(),
                o.daemon_rss_peak_mb,
                n.daemon_rss_peak_mb,
            ));
        }
        if let (Some(n), Some(o)) = (&self.docker, &old.docker) {
            for (k, v) in &n.overhead_s {
                if let Some(ov) = o.overhead_s.get(k) {
                    pairs.push((format!("docker run overhead s ({k})"), *ov, *v));
                }
            }
        }
        let mut out = String::new();
        let w = [34, 12, 12, 9];
        row(
            &mut out,
            &[
                "figure".into(),
                "before".into(),
                "now".into(),
                "change".into(),
            ],
            &w,
        );
        for (k, a, b) in pairs {
            let change = if a != 0.0 {
                format!("{:+.1}%", (b - a) / a * 100.0)
            } else {
                "-".into()
            };
            row(
                &mut out,
                &[k, format!("{a:.3}"), format!("{b:.3}"), change],
                &w,
            );
        }
        out
    }

    /// An SVG line plot of per-endpoint latency against the number of endpoints (scale).
    pub fn scale_svg(&self) -> Option<String> {
        let s = self.scale.as_ref()?;
        let series = [
            (
                "create p50",
                s.create
                    .iter()
                    .map(|b| (b.endpoints as f64, b.latency.p50_ms))
                    .collect::<Vec<_>>(),
                "#1f77b4",
            ),
            (
                "create p99",
                s.create
                    .iter()
                    .map(|b| (b.endpoints as f64, b.latency.p99_ms))
                    .collect(),
                "#ff7f0e",
            ),
        ];
        Some(line_svg(
            "kuryr: per-endpoint latency as the network grows",
            "endpoints on the network",
            "ms",
            &series,
        ))
    }

    /// An SVG bar chart of `docker run` medians per network.
    pub fn docker_svg(&self) -> Option<String> {
        let d = self.docker.as_ref()?;
        let bars: Vec<(String, f64)> = d
            .run_median_s
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        Some(bar_svg(
            &format!("docker run --rm sh -c true, median of {} runs", d.runs),
            "seconds",
            &bars,
        ))
    }
}

/// One line of a plot: its name, its points and its colour.
type Series<'a> = (&'a str, Vec<(f64, f64)>, &'a str);

const W: f64 = 640.0;
const H: f64 = 360.0;
const PAD: f64 = 56.0;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn line_svg(title: &str, xlabel: &str, ylabel: &str, series: &[Series]) -> String {
    let xmax = series
        .iter()
        .flat_map(|s| s.1.iter().map(|p| p.0))
        .fold(1.0_f64, f64::max);
    let ymax = series
        .iter()
        .flat_map(|s| s.1.iter().map(|p| p.1))
        .fold(0.001_f64, f64::max)
        * 1.15;
    let x = |v: f64| PAD + v / xmax * (W - 2.0 * PAD);
    let y = |v: f64| H - PAD - v / ymax * (H - 2.0 * PAD);
    let mut out = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">"#
    );
    let _ = write!(
        out,
        r#"<rect width="100%" height="100%" fill="white"/><text x="{}" y="20" text-anchor="middle" font-size="14">{}</text>"#,
        W / 2.0,
        esc(title)
    );
    let _ = write!(
        out,
        r#"<line x1="{PAD}" y1="{}" x2="{}" y2="{}" stroke="black"/><line x1="{PAD}" y1="{PAD}" x2="{PAD}" y2="{}" stroke="black"/>"#,
        H - PAD,
        W - PAD,
        H - PAD,
        H - PAD
    );
    for i in 0..=4 {
        let (xv, yv) = (xmax * i as f64 / 4.0, ymax * i as f64 / 4.0);
        let _ = write!(
            out,
            r#"<text x="{:.1}" y="{}" text-anchor="middle">{:.0}</text>"#,
            x(xv),
            H - PAD + 16.0,
            xv
        );
        let _ = write!(
            out,
            r#"<text x="{}" y="{:.1}" text-anchor="end">{:.2}</text>"#,
            PAD - 6.0,
            y(yv) + 4.0,
            yv
        );
    }
    let _ = write!(
        out,
        r#"<text x="{}" y="{}" text-anchor="middle">{}</text><text x="14" y="{}" transform="rotate(-90 14 {})" text-anchor="middle">{}</text>"#,
        W / 2.0,
        H - 14.0,
        esc(xlabel),
        H / 2.0,
        H / 2.0,
        esc(ylabel)
    );
    for (i, (name, pts, color)) in series.iter().enumerate() {
        let path: Vec<String> = pts
            .iter()
            .map(|(a, b)| format!("{:.1},{:.1}", x(*a), y(*b)))
            .collect();
        let _ = write!(
            out,
            r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{}"/>"#,
            path.join(" ")
        );
        let _ = write!(
            out,
            r#"<text x="{}" y="{}" fill="{color}">{}</text>"#,
            W - PAD - 90.0,
            PAD + 16.0 * i as f64,
            esc(name)
        );
    }
    out.push_str("</svg>\n");
    out
}

fn bar_svg(title: &str, ylabel: &str, bars: &[(String, f64)]) -> String {
    let ymax = bars.iter().map(|b| b.1).fold(0.001_f64, f64::max) * 1.15;
    let slot = (W - 2.0 * PAD) / bars.len().max(1) as f64;
    let mut out = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">"#
    );
    let _ = write!(
        out,
        r#"<rect width="100%" height="100%" fill="white"/><text x="{}" y="20" text-anchor="middle" font-size="14">{}</text>"#,
        W / 2.0,
        esc(title)
    );
    let _ = write!(
        out,
        r#"<line x1="{PAD}" y1="{}" x2="{}" y2="{}" stroke="black"/>"#,
        H - PAD,
        W - PAD,
        H - PAD
    );
    let _ = write!(
        out,
        r#"<text x="14" y="{}" transform="rotate(-90 14 {})" text-anchor="middle">{}</text>"#,
        H / 2.0,
        H / 2.0,
        esc(ylabel)
    );
    for (i, (name, v)) in bars.iter().enumerate() {
        let h = v / ymax * (H - 2.0 * PAD);
        let x0 = PAD + slot * i as f64 + slot * 0.15;
        let _ = write!(
            out,
            r##"<rect x="{x0:.1}" y="{:.1}" width="{:.1}" height="{h:.1}" fill="#1f77b4"/>"##,
            H - PAD - h,
            slot * 0.7
        );
        let _ = write!(
            out,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{v:.3}</text>"#,
            x0 + slot * 0.35,
            H - PAD - h - 4.0
        );
        let _ = write!(
            out,
            r#"<text x="{:.1}" y="{}" text-anchor="middle">{}</text>"#,
            x0 + slot * 0.35,
            H - PAD + 16.0,
            esc(name)
        );
    }
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scale::Batch;
    use crate::stats::Summary;

    fn scale() -> ScaleReport {
        let b = |n, p50| Batch {
            endpoints: n,
            latency: Summary {
                n: 10,
                p50_ms: p50,
                p95_ms: p50,
                p99_ms: p50 * 2.0,
                max_ms: p50 * 3.0,
                mean_ms: p50,
            },
            daemon_rss_mb: 12.0,
        };
        ScaleReport {
            endpoints: 2000,
            batch: 1000,
            create: vec![b(1000, 1.0), b(2000, 1.5)],
            delete: vec![b(1000, 1.0), b(0, 1.0)],
            create_p50_growth: 1.5,
            daemon_rss_start_mb: 10.0,
            daemon_rss_peak_mb: 12.0,
        }
    }

    #[test]
    fn json_round_trips_and_tables_and_plots_render() {
        let r = BenchReport {
            machine: Machine::here("test"),
            scale: Some(scale()),
            ..Default::default()
        };
        let text = serde_json::to_string(&r).unwrap();
        let back: BenchReport = serde_json::from_str(&text).unwrap();
        assert_eq!(back.scale.as_ref().unwrap().create.len(), 2);
        let table = r.to_table();
        assert!(
            table.contains("scale: 2000 endpoints") && table.contains("1.50x"),
            "{table}"
        );
        let svg = r.scale_svg().unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("polyline"));
        assert!(r.docker_svg().is_none());
        let mut newer = r.clone();
        if let Some(s) = newer.scale.as_mut() {
            s.create_p50_growth = 3.0;
        }
        let cmp = newer.compare(&r);
        assert!(cmp.contains("+100.0%"), "{cmp}");
    }
}
