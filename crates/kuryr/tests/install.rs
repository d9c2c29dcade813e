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
