//! `make install` and `make uninstall` into a DESTDIR, as a packager runs them: the binary,
//! the generated man pages, kuryr.conf(5) and the completions land under PREFIX, and
//! uninstall leaves no file behind. Needs only `make` (no root, no lab).
use std::path::{Path, PathBuf};
use std::process::Command;

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

fn make(target: &str, dest: &Path) -> std::process::Output {
    Command::new("make")
        .arg("-C")
        .arg(ROOT)
        .arg(target)
        .arg(format!("DESTDIR={}", dest.display()))
        .arg("PREFIX=/usr")
        .arg(format!("KURYR_BIN={}", env!("CARGO_BIN_EXE_kuryr")))
        .output()
        .expect("run make (is it installed?)")
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn make_install_puts_the_binary_pages_and_completions_under_prefix_and_uninstall_takes_them() {
    let dest = tempfile::tempdir().expect("tempdir");
    let out = make("install", dest.path());
    assert!(
        out.status.success(),
        "make install: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let usr = dest.path().join("usr");
    let bin = usr.join("bin/kuryr");
    let version = Command::new(&bin).arg("version").output().expect("run it");
    assert!(
        version.status.success(),
        "the installed binary does not run"
    );
    for page in [
        "kuryr.1",
        "kuryr-daemon.1",
        "kuryr-network.1",
        "kuryr-router.1",
    ] {
        let text = std::fs::read_to_string(usr.join("share/man/man1").join(page))
            .unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(text.contains(".TH"), "{page} is not a man page");
    }
    let conf =
        std::fs::read_to_string(usr.join("share/man/man5/kuryr.conf.5")).expect("kuryr.conf.5");
    assert!(conf.contains(".TH KURYR.CONF 5") && conf.contains("log_file"));
    let bash = std::fs::read_to_string(usr.join("share/bash-completion/completions/kuryr"))
        .expect("bash completion");
    assert!(bash.contains("complete"), "{bash}");
    assert!(usr.join("share/zsh/site-functions/_kuryr").is_file());
    assert!(usr
        .join("share/fish/vendor_completions.d/kuryr.fish")
        .is_file());
    let installed = files(dest.path());
    assert!(installed.len() >= 10, "{installed:?}");

    let out = make("uninstall", dest.path());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        files(dest.path()),
        Vec::<PathBuf>::new(),
        "uninstall left files"
    );
}

#[test]
#[ignore = "needs systemd-analyze from the lab's packages (make test)"]
fn the_installed_units_pass_systemd_analyze_verify() {
    // PREFIX is the temporary folder itself, so ExecStart names a binary that exists.
    let prefix = tempfile::tempdir().expect("tempdir");
    let out = Command::new("make")
        .arg("-C")
        .arg(ROOT)
        .arg("install")
        .arg(format!("PREFIX={}", prefix.path().display()))
        .arg(format!("KURYR_BIN={}", env!("CARGO_BIN_EXE_kuryr")))
        .output()
        .expect("run make");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let units = prefix.path().join("lib/systemd/system");
    let service = std::fs::read_to_string(units.join("kuryr.service")).expect("kuryr.service");
    assert!(
        service.contains(&format!(
            "ExecStart={}/bin/kuryr daemon",
            prefix.path().display()
        )),
        "{service}"
    );
    let verify = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(units.join("kuryr.service"))
        .arg(units.join("kuryr.socket"))
        .output()
        .expect("run systemd-analyze (the lab installs systemd)");
    assert!(
        verify.status.success(),
        "systemd-analyze verify: {}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );
}

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

#[test]
#[ignore = "needs root and the lab (make test)"]
fn the_debian_package_installs_passes_doctor_and_purges_without_a_trace() {
    // Never replace what an operator installed on this machine.
    let installed = Command::new("dpkg")
        .args(["-s", "kuryr"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        !installed,
        "a kuryr package is installed here already: this test would replace it; remove it first"
    );
    assert!(
        !Path::new("/etc/kuryr/kuryr.conf").exists(),
        "/etc/kuryr/kuryr.conf exists: the package's conffile would meet it; move it away first"
    );
    run_ok(
        Command::new("make")
            .arg("-C")
            .arg(ROOT)
            .arg("deb")
            .arg(format!("KURYR_BIN={}", env!("CARGO_BIN_EXE_kuryr"))),
    );
    let deb = std::fs::read_dir(Path::new(ROOT).join("target/deb"))
        .expect("target/deb")
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .expect("a .deb in target/deb");
    let listed = run_ok(Command::new("dpkg-deb").arg("-c").arg(&deb));
    let files: Vec<String> = listed
        .lines()
        .filter(|l| !l.starts_with('d'))
        .filter_map(|l| l.split_whitespace().last())
        .map(|p| p.trim_start_matches('.').to_string())
        .collect();
    assert!(files.contains(&"/usr/bin/kuryr".to_string()), "{files:?}");

    struct Purge;
    impl Drop for Purge {
        fn drop(&mut self) {
            let _ = Command::new("dpkg").args(["-P", "kuryr"]).output();
        }
    }
    let _purge = Purge;
    run_ok(Command::new("dpkg").arg("-i").arg(&deb));
    let mode = std::fs::metadata("/etc/kuryr/kuryr.conf")
        .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777)
        .expect("the conffile");
    assert_eq!(mode, 0o600, "kuryr.conf must be 0600");
    assert!(Path::new("/lib/systemd/system/kuryr.service").is_file());

    // The installed binary, with the packaged kuryr.conf, serves and passes doctor.
    let sock = format!("/run/docker/plugins/kuryrdeb-{}.sock", std::process::id());
    let mut daemon = Command::new("/usr/bin/kuryr")
        .args(["daemon", "--socket", &sock])
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start the installed kuryr");
    let start = std::time::Instant::now();
    while !Path::new(&sock).exists() && start.elapsed() < std::time::Duration::from_secs(20) {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let doctor = Command::new("/usr/bin/kuryr")
        .args(["doctor", "--plugin", &sock])
        .output()
        .expect("run doctor");
    let _ = Command::new("kill")
        .args(["-TERM", &daemon.id().to_string()])
        .status();
    let _ = daemon.wait();
    assert!(
        doctor.status.success(),
        "kuryr doctor with the package:\n{}",
        String::from_utf8_lossy(&doctor.stdout)
    );

    run_ok(Command::new("dpkg").args(["-P", "kuryr"]));
    let left: Vec<&String> = files.iter().filter(|f| Path::new(f).exists()).collect();
    assert!(
        left.is_empty(),
        "dpkg -P left files of the package: {left:?}"
    );
}
