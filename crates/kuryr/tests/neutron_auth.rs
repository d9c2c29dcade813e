//! Keystone authentication in the Neutron mode, end to end against the lab's real Keystone 30
//! and Neutron 29 behind keystonemiddleware (`make lab-openstack`): password and
//! application-credential logins, the Neutron URL taken from the token's catalog, a token
//! expiring mid-run (the lab's second Keystone issues 20-second tokens), a token revoked in
//! Keystone while the daemon runs, and a wrong password. Every daemon runs with
//! RUST_LOG=debug and its log is checked for secrets and tokens. Run by `make test`; ignored
//! by a bare `cargo test`.
mod common;

use common::keystone::*;
use common::neutron::*;
use common::*;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::process::Command;
use std::time::{Duration, Instant};

/// What Neutron behind Keystone answers to this token.
fn neutron_status(token: &str) -> u16 {
    http(
        "GET",
        &format!("{NEUTRON_KEYSTONE}/v2.0/networks?limit=1"),
        Some(token),
        None,
    )
    .0
}

/// The lab's Keystone admin API.
#[derive(Clone)]
struct Admin {
    url: String,
    token: String,
}

impl Admin {
    fn new(env: &HashMap<String, String>) -> Admin {
        let url = env["KURYR_LAB_KEYSTONE"].clone();
        let (token, _) = password_token(
            &url,
            &env["KURYR_LAB_ADMIN_USER"],
            &env["KURYR_LAB_ADMIN_PASSWORD"],
            &env["KURYR_LAB_ADMIN_PROJECT"],
        );
        Admin { url, token }
    }

    fn call(&self, method: &str, path: &str, req: Option<Value>) -> (u16, Value) {
        let (status, text) = http(
            method,
            &format!("{}{path}", self.url),
            Some(&self.token),
            req.as_ref(),
        );
        (status, body(&text))
    }

    fn ok(&self, method: &str, path: &str, req: Option<Value>) -> Value {
        let (status, v) = self.call(method, path, req);
        assert!(
            (200..300).contains(&status),
            "Keystone {method} {path}: {status} {v}"
        );
        v
    }
}

/// A Keystone user of this test only, with the admin role on the lab's project (kuryr binds
/// ports to hosts, which Neutron allows admins only); deleted when dropped. Revoking its
/// tokens touches nobody else's.
struct TestUser {
    admin: Admin,
    id: String,
    name: String,
    password: String,
}

impl TestUser {
    fn create(admin: &Admin, project: &str) -> TestUser {
        let name = unique("kuryrauth");
        let password = format!("pw-{}", unique("secret"));
        let pid = admin.ok("GET", &format!("/projects?name={project}"), None)["projects"][0]["id"]
            .as_str()
            .expect("the lab's project")
            .to_string();
        let rid = admin.ok("GET", "/roles?name=admin", None)["roles"][0]["id"]
            .as_str()
            .expect("the admin role")
            .to_string();
        let v = admin.ok(
            "POST",
            "/users",
            Some(json!({"user": {"name": name, "password": password,
                "domain_id": "default", "default_project_id": pid}})),
        );
        let user = TestUser {
            admin: admin.clone(),
            id: v["user"]["id"].as_str().expect("user id").to_string(),
            name,
            password,
        };
        user.admin.ok(
            "PUT",
            &format!("/projects/{pid}/users/{}/roles/{rid}", user.id),
            None,
        );
        user
    }

    fn set_enabled(&self, enabled: bool) {
        self.admin.ok(
            "PATCH",
            &format!("/users/{}", self.id),
            Some(json!({"user": {"enabled": enabled}})),
        );
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        let _ = self
            .admin
            .call("DELETE", &format!("/users/{}", self.id), None);
    }
}

/// A kuryr.conf logging in with a password; no `endpoint`, so Neutron's URL must come from
/// the token's catalog. Pools get a prefix of their own, so concurrent runs never share one.
fn password_conf(auth_url: &str, user: &str, password: &str, project: &str) -> String {
    format!(
        "[DEFAULT]\nsubnetpool_name_prefix = {}\n[neutron]\nauth_type = password\nauth_url = {auth_url}\nusername = {user}\npassword = {password}\nproject_name = {project}\nuser_domain_name = Default\nproject_domain_name = Default\nvif_plugging_timeout = 20\n",
        unique("kauthPool")
    )
}

fn appcred_conf(auth_url: &str, id: &str, secret: &str) -> String {
    format!(
        "[DEFAULT]\nsubnetpool_name_prefix = {}\n[neutron]\nauth_type = v3applicationcredential\nauth_url = {auth_url}\napplication_credential_id = {id}\napplication_credential_secret = {secret}\nvif_plugging_timeout = 20\n",
        unique("kauthPool")
    )
}

/// Keystone logins the daemon made (its debug line per login).
fn logins(log: &str) -> usize {
    log.matches("logged in to Keystone").count()
}

/// Requests Neutron answered 401 (the daemon's info line per refusal).
fn refusals(log: &str) -> usize {
    log.matches("Neutron refused the Keystone token").count()
}

/// Why each login happened, in order (`first login`, `renewal before expiry`, ...).
fn login_reasons(log: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.contains("logged in to Keystone"))
        .filter_map(|l| l.split("reason=\"").nth(1)?.split('"').next())
        .map(str::to_string)
        .collect()
}

/// The token lifetimes (seconds) the daemon's logins reported.
fn token_lifetimes(log: &str) -> Vec<f64> {
    log.lines()
        .filter(|l| l.contains("logged in to Keystone"))
        .filter_map(|l| l.split("lifetime_s=").nth(1))
        .filter_map(|v| v.split_whitespace().next()?.parse().ok())
        .collect()
}

/// Neither the secrets nor any Keystone token are in the daemon's output. Keystone's fernet
/// tokens all start with `gAAAAA` (the fernet version byte, base64).
fn assert_no_secrets(log: &str, secrets: &[&str]) {
    for s in secrets {
        assert!(!s.is_empty());
        assert!(
            !log.contains(s),
            "the daemon's log contains a secret or token (not shown here)"
        );
    }
    assert!(
        !log.contains("gAAAAA"),
        "the daemon's log contains a Keystone token"
    );
    assert!(logins(log) >= 1, "no login in the log: is RUST_LOG=debug?");
}

fn run_rm(net: &Network) {
    // Named and guarded, so that a run that fails before --rm applies leaves nothing.
    let c = Container {
        name: unique("kctr"),
    };
    docker_ok(&[
        "run", "--rm", "--name", &c.name, "--net", &net.name, IMAGE, "sh", "-c", "true",
    ]);
}

#[test]
#[ignore = "needs root and the lab (make test)"]
fn password_login_finds_neutron_in_the_catalog_and_two_containers_ping() {
    let env = require_keystone();
    let (url, user, password, project) = (
        &env["KURYR_LAB_KEYSTONE"],
        &env["KURYR_LAB_USER"],
        &env["KURYR_LAB_PASSWORD"],
        &env["KURYR_LAB_PROJECT"],
    );
    // Our own token, for the project's id (and to make sure the log holds no token).
    let (probe, token_body) = password_token(url, user, password, project);
    let project_id = token_body["token"]["project"]["id"]
        .as_str()
        .expect("project id")
        .to_string();
    let port = free_tcp_port(8);
    let conf = password_conf(url, user, password, project).replacen(
        "[DEFAULT]\n",
        &format!("[DEFAULT]\nmetrics_address = 127.0.0.1:{port}\n"),
        1,
    );
    let d = NeutronDaemon::start_with(&conf, "debug");
    let net = d.network(&["--subnet", "10.73.0.0/24", "--gateway", "10.73.0.1"]);
    {
        let a = Container::run(&net, &[]);
        let b = Container::run(&net, &[]);
        let (ia, ib) = (a.ip(&net), b.ip(&net));
        assert!(
            ia.starts_with("10.73.0.") && ib.starts_with("10.73.0.") && ia != ib,
            "{ia} {ib}"
        );
        assert!(a.pings(&ib), "a cannot ping b");
        assert!(b.pings(&ia), "b cannot ping a");
    }
    // The network was created through Keystone: it belongs to the user's project (noauth
    // Neutron would have made it with an admin context and no project), and Neutron's URL
    // came from the catalog.
    let nets = neutron_network(&net.id);
    assert_eq!(nets.len(), 1, "{nets:?}");
    assert_eq!(nets[0]["project_id"], project_id.as_str(), "{}", nets[0]);
    let log = d.log_text();
    assert!(
        log.contains(&format!("endpoint={NEUTRON_KEYSTONE}")),
        "Neutron's URL is not the catalog's:\n{log}"
    );
    assert_eq!(logins(&log), 1, "one login for the whole run:\n{log}");
    assert_eq!(refusals(&log), 0, "{log}");
    assert_no_secrets(&log, &[password, &probe]);
    // The metrics count the one login and every Neutron request the debug log shows.
    let s = scrape(port);
    assert_eq!(
        metric(
            &s,
            "kuryr_keystone_request_duration_seconds_count",
            &[("code", "201")]
        ),
        1.0,
        "{s:#?}"
    );
    assert_eq!(
        metric(&s, "kuryr_neutron_request_duration_seconds_count", &[]),
        d.log_text().matches("Neutron request").count() as f64
    );
    assert_eq!(
        metric(
            &s,
            "kuryr_neutron_request_duration_seconds_count",
            &[("code", "401")]
        ),
        0.0
    );
    assert_eq!(metric(&s, "kuryr_build_info", &[("mode", "neutron")]), 1.0);
}

#[test]
#[ignore = "needs root and the lab (make test)"]
fn an_application_credential_and_an_unversioned_auth_url_log_in_and_a_container_starts() {
    let env = require_keystone();
    let (id, secret) = (
        &env["KURYR_LAB_APPCRED_ID"],
        &env["KURYR_LAB_APPCRED_SECRET"],
    );
    // As deployment tools write it for keystoneauth, without /v3: found by version discovery.
    let url = env["KURYR_LAB_KEYSTONE"].trim_end_matches("/v3");
    assert!(!url.ends_with("/v3") && url != env["KURYR_LAB_KEYSTONE"]);
    let d = NeutronDaemon::start_with(&appcred_conf(url, id, secret), "debug");
    let net = d.network(&["--subnet", "10.74.0.0/24", "--gateway", "10.74.0.1"]);
    {
        let a = Container::run(&net, &[]);
        let ip = a.ip(&net);
        assert!(ip.starts_with("10.74.0."), "{ip}");
        let addr = String::from_utf8_lossy(&a.exec(&["ip", "-4", "addr", "show", "eth0"]).stdout)
            .to_string();
        assert!(addr.contains(&format!("{ip}/24")), "{addr}");
    }
    let log = d.log_text();
    assert!(
        log.contains(&format!(
            "found Keystone's v3 API auth_url=\"{url}\" v3={url}/v3/"
        )),
        "{log}"
    );
    assert!(
        log.contains(&format!("endpoint={NEUTRON_KEYSTONE}")),
        "{log}"
    );
    assert_eq!(logins(&log), 1, "{log}");
    assert_no_secrets(&log, &[secret]);
}

#[test]
#[ignore = "needs root and the lab (make test)"]
fn a_token_expiring_mid_run_is_renewed_before_neutron_sees_it_expired() {
    let env = require_keystone();
    let (url, user, password, project) = (
        &env["KURYR_LAB_KEYSTONE_SHORT"],
        &env["KURYR_LAB_USER"],
        &env["KURYR_LAB_PASSWORD"],
        &env["KURYR_LAB_PROJECT"],
    );
    let lifetime = Duration::from_secs(
        env["KURYR_LAB_SHORT_TOKEN_EXPIRATION"]
            .parse()
            .expect("KURYR_LAB_SHORT_TOKEN_EXPIRATION is seconds"),
    );
    assert!(
        lifetime <= Duration::from_secs(60),
        "keystone-short's tokens live {lifetime:?}: too long for this test"
    );
    // A token issued just before the daemon's first one: when it is dead, so is that one.
    let (probe, token_body) = password_token(url, user, password, project);
    assert_eq!(neutron_status(&probe), 200, "a fresh short token works");
    let d = NeutronDaemon::start_with(&password_conf(url, user, password, project), "debug");
    let ready = Instant::now();
    let net = d.network(&["--subnet", "10.75.0.0/24", "--gateway", "10.75.0.1"]);
    let a = Container::run(&net, &[]);

    // Busy across the first token's whole life: containers start and stop back to back
    // while it is renewed.
    let mut runs = 0;
    while ready.elapsed() < lifetime + Duration::from_secs(1) {
        run_rm(&net);
        runs += 1;
    }
    assert_eq!(
        neutron_status(&probe),
        401,
        "Neutron still accepts a token older than its lifetime ({}): the test proves nothing",
        token_body["token"]["expires_at"]
    );
    // While busy the token was renewed before it expired (at 3/4 of its life).
    let busy = login_reasons(&d.log_text());
    let busy_logins = busy.len();
    assert!(
        busy_logins >= 2 && busy[1..].iter().all(|r| r == "renewal before expiry"),
        "{runs} runs over {:?}, logins {busy:?}:\n{}",
        ready.elapsed(),
        d.log_text()
    );

    // Idle until the current token has expired too, then a container starts.
    std::thread::sleep(lifetime + Duration::from_secs(2));
    let b = Container::run(&net, &[]);
    assert!(a.pings(&b.ip(&net)), "a cannot ping b");

    let log = d.log_text();
    assert_eq!(
        refusals(&log),
        0,
        "Neutron was sent an expired token:\n{log}"
    );
    // After the idle time the daemon knew from its own clock that the token had expired,
    // and logged in before sending anything.
    let reasons = login_reasons(&log);
    assert_eq!(
        reasons.get(busy_logins).map(String::as_str),
        Some("token expired unused"),
        "logins {reasons:?}:\n{log}"
    );
    // Keystone truncates issued_at and expires_at to the second: 20 s tokens show 19-21 s.
    let lifetimes = token_lifetimes(&log);
    assert!(
        !lifetimes.is_empty()
            && lifetimes
                .iter()
                .all(|l| (l - lifetime.as_secs_f64()).abs() <= 1.0),
        "the daemon did not get {lifetime:?} tokens: {lifetimes:?}\n{log}"
    );
    eprintln!(
        "expiry: {runs} runs in {:?} busy; logins {reasons:?}, lifetimes {lifetimes:?}, 0 refusals",
        lifetime + Duration::from_secs(1),
    );
    for l in log.lines().filter(|l| l.contains("logged in to Keystone")) {
        eprintln!("  {l}");
    }
    assert_no_secrets(&log, &[password, &probe]);
    drop((a, b));
}

#[test]
#[ignore = "needs root and the lab (make test)"]
fn a_token_revoked_in_keystone_makes_one_login_and_docker_run_succeeds() {
    let env = require_keystone();
    let url = &env["KURYR_LAB_KEYSTONE"];
    let admin = Admin::new(&env);
    let user = TestUser::create(&admin, &env["KURYR_LAB_PROJECT"]);
    let project = &env["KURYR_LAB_PROJECT"];
    let d = NeutronDaemon::start_with(
        &password_conf(url, &user.name, &user.password, project),
        "debug",
    );
    let net = d.network(&["--subnet", "10.76.0.0/24", "--gateway", "10.76.0.1"]);
    let a = Container::run(&net, &[]);
    assert_eq!(logins(&d.log_text()), 1, "{}", d.log_text());

    // Disabling a user revokes every token it has (a revocation event in Keystone);
    // enabling it again lets it log in. Revocation events have a granularity of one second:
    // a token issued within the same second as the event is revoked too. So the revocation
    // is made early in a second and `docker run` follows at once: the daemon's first
    // request is refused within that second, and a re-login then would get a revoked
    // token again; the daemon must wait for the next second.
    let (probe, _) = password_token(url, &user.name, &user.password, project);
    assert_eq!(neutron_status(&probe), 200);
    let subsec = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .subsec_millis();
    std::thread::sleep(Duration::from_millis(u64::from(1000 - subsec) + 10));
    let revoked = Instant::now();
    let before = utc_second();
    user.set_enabled(false);
    let after = utc_second();
    user.set_enabled(true);
    let b = Container::run(&net, &[]);
    let run_took = revoked.elapsed();
    // A probe token of the same user shows the revocation reached Neutron.
    assert_eq!(
        neutron_status(&probe),
        401,
        "the revoked probe token still works"
    );
    assert!(a.pings(&b.ip(&net)), "a cannot ping b");
    let log = d.log_text();
    assert_eq!(refusals(&log), 1, "one 401:\n{log}");
    assert_eq!(logins(&log), 2, "exactly one re-login:\n{log}");
    assert!(log.contains("reason=\"token refused by Neutron\""), "{log}");
    // Whether this run met the one-second case (it depends on how busy the machine is; the
    // fake Keystone of kuryr-neutron's tests always does).
    let refused_at = log
        .lines()
        .find(|l| l.contains("Neutron refused the Keystone token"))
        .and_then(|l| l.get(11..19))
        .unwrap_or_default();
    eprintln!(
        "revocation: event within {before}..{after} UTC, 401 at {refused_at} ({}), docker run done {run_took:?} after the event",
        if before == after && refused_at == before {
            "the same second: a re-login at once would have been refused too"
        } else {
            "a later second"
        }
    );
    for l in log.lines().filter(|l| {
        l.contains("logged in to Keystone")
            || l.contains("Neutron refused")
            || l.contains("Keystone's next second")
    }) {
        eprintln!("  {l}");
    }
    assert_no_secrets(&log, &[&user.password, &probe]);
    drop((a, b));
}

/// The current UTC time of day as `HH:MM:SS`, as the daemon's log lines carry it.
fn utc_second() -> String {
    let s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
        % 86_400;
    format!("{:02}:{:02}:{:02}", s / 3600, s % 3600 / 60, s % 60)
}

/// Runs `kuryr daemon` with this kuryr.conf, expecting it to exit within 30 s; its output.
fn daemon_that_exits(conf_text: &str) -> (std::process::ExitStatus, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = dir.path().join("kuryr.conf");
    std::fs::write(&conf, conf_text).expect("write kuryr.conf");
    let socket = format!("/run/docker/plugins/{}.sock", unique("kuryrauth"));
    let out_path = dir.path().join("out.log");
    let out = std::fs::File::create(&out_path).expect("output file");
    let mut child = Command::new(env!("CARGO_BIN_EXE_kuryr"))
        .args(["daemon", "--config"])
        .arg(&conf)
        .args(["--socket", &socket])
        .env("RUST_LOG", "debug")
        .env("NO_COLOR", "1")
        .stdout(out.try_clone().expect("output file"))
        .stderr(out)
        .spawn()
        .expect("start kuryr daemon");
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait for kuryr daemon") {
            break s;
        }
        if start.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            let _ = child.wait();
            let _ = std::fs::remove_file(&socket);
            panic!(
                "kuryr daemon still runs 30 s after start with wrong credentials:\n{}",
                std::fs::read_to_string(&out_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let _ = std::fs::remove_file(&socket);
    (
        status,
        std::fs::read_to_string(&out_path).unwrap_or_default(),
    )
}

#[test]
#[ignore = "needs root and the lab (make test)"]
fn wrong_credentials_stop_the_daemon_naming_keystone_and_the_keys_to_check() {
    let env = require_keystone();
    let url = &env["KURYR_LAB_KEYSTONE"];
    let wrong = format!("Wrong-{}", unique("pw"));
    let (status, out) = daemon_that_exits(&password_conf(
        url,
        &env["KURYR_LAB_USER"],
        &wrong,
        &env["KURYR_LAB_PROJECT"],
    ));
    assert!(!status.success(), "{out}");
    let last = out.lines().last().unwrap_or_default();
    assert!(last.contains(&format!("Keystone at {url}")), "{out}");
    assert!(last.contains("401"), "{out}");
    assert!(
        last.contains(&format!("user {} (domain Default)", env["KURYR_LAB_USER"])),
        "{out}"
    );
    assert!(
        last.contains(
            "check [neutron] username, password, user_domain_name, project_name and project_domain_name"
        ),
        "{out}"
    );
    assert!(!out.contains(&wrong), "the wrong password is in the output");

    let wrong_secret = format!("Wrong-{}", unique("secret"));
    let (status, out) = daemon_that_exits(&appcred_conf(
        url,
        &env["KURYR_LAB_APPCRED_ID"],
        &wrong_secret,
    ));
    assert!(!status.success(), "{out}");
    let last = out.lines().last().unwrap_or_default();
    assert!(last.contains(&format!("Keystone at {url}")), "{out}");
    assert!(
        last.contains(&format!(
            "application credential {}",
            env["KURYR_LAB_APPCRED_ID"]
        )),
        "{out}"
    );
    assert!(
        last.contains("application_credential_id and application_credential_secret"),
        "{out}"
    );
    assert!(
        !out.contains(&wrong_secret),
        "the wrong secret is in the output"
    );
}

/// `kuryr doctor --format json` on this kuryr.conf: the checks by name.
fn doctor_checks(conf_text: &str) -> (String, HashMap<String, Value>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = dir.path().join("kuryr.conf");
    std::fs::write(&conf, conf_text).expect("write kuryr.conf");
    let out = run(Command::new(env!("CARGO_BIN_EXE_kuryr"))
        .args(["doctor", "--format", "json", "--timeout", "10", "--config"])
        .arg(&conf));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let checks: Vec<Value> = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("doctor's JSON ({e}): {text}"));
    let by_name = checks
        .into_iter()
        .filter_map(|c| Some((c["check"].as_str()?.to_string(), c)))
        .collect();
    (text, by_name)
}

#[test]
#[ignore = "needs root and the lab (make test)"]
fn doctor_logs_in_to_keystone_as_the_daemon_would_and_names_a_refused_login() {
    let env = require_keystone();
    let conf = |password: &str| {
        format!(
            "[neutron]\nauth_type = password\nauth_url = {}\nusername = {}\npassword = {password}\nproject_name = {}\n",
            env["KURYR_LAB_KEYSTONE"], env["KURYR_LAB_USER"], env["KURYR_LAB_PROJECT"]
        )
    };
    let (text, checks) = doctor_checks(&conf(&env["KURYR_LAB_PASSWORD"]));
    let api = &checks["neutron api"];
    assert_eq!(api["status"], "ok", "{text}");
    assert!(
        api["detail"]
            .as_str()
            .unwrap_or("")
            .contains("logged in to Keystone"),
        "{api}"
    );
    let wrong = format!("not-{}", env["KURYR_LAB_PASSWORD"]);
    let (text, checks) = doctor_checks(&conf(&wrong));
    let api = &checks["neutron api"];
    assert_eq!(api["status"], "fail", "{text}");
    let detail = api["detail"].as_str().unwrap_or("");
    assert!(
        detail.contains(&env["KURYR_LAB_KEYSTONE"]) && detail.contains("[neutron]"),
        "{api}"
    );
    assert!(
        !text.contains(&wrong),
        "doctor printed the password: {text}"
    );
}
