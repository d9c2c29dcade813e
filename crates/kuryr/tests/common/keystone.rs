//! The lab's Keystone and the Neutron behind it (`make lab-openstack`): its endpoints and
//! credentials as `lab/openstack.sh env` prints them, logins, and plain HTTP with curl.
use super::neutron::require_neutron;
use super::run;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::Write;
use std::process::{Command, Stdio};

/// Neutron behind Keystone, as the lab registers it in the catalog.
pub const NEUTRON_KEYSTONE: &str = "http://127.0.0.1:9697";

/// What `lab/openstack.sh env` prints: endpoints and credentials of the lab.
pub fn lab_env() -> HashMap<String, String> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../lab/openstack.sh");
    let out = run(Command::new(script).arg("env"));
    assert!(
        out.status.success(),
        "{script} env: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let env: HashMap<String, String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    for key in [
        "KURYR_LAB_KEYSTONE",
        "KURYR_LAB_KEYSTONE_SHORT",
        "KURYR_LAB_SHORT_TOKEN_EXPIRATION",
        "KURYR_LAB_USER",
        "KURYR_LAB_PASSWORD",
        "KURYR_LAB_PROJECT",
        "KURYR_LAB_APPCRED_ID",
        "KURYR_LAB_APPCRED_SECRET",
        "KURYR_LAB_ADMIN_USER",
        "KURYR_LAB_ADMIN_PASSWORD",
        "KURYR_LAB_ADMIN_PROJECT",
        "KURYR_LAB_MEMBER_USER",
        "KURYR_LAB_MEMBER_PASSWORD",
    ] {
        assert!(
            env.get(key).is_some_and(|v| !v.is_empty()),
            "{script} env does not give {key}: run `make lab-openstack` with this tree's lab/openstack.sh"
        );
    }
    env
}

/// The lab with both Keystones and the authenticated Neutron answering.
pub fn require_keystone() -> HashMap<String, String> {
    require_neutron();
    let env = lab_env();
    for url in [&env["KURYR_LAB_KEYSTONE"], &env["KURYR_LAB_KEYSTONE_SHORT"]] {
        let (status, _) = http("GET", url, None, None);
        assert_eq!(
            status, 200,
            "Keystone does not answer at {url}: run `make lab-openstack`"
        );
    }
    let (status, _) = http(
        "GET",
        &format!("{NEUTRON_KEYSTONE}/v2.0/networks"),
        None,
        None,
    );
    assert_eq!(
        status, 401,
        "Neutron behind Keystone should refuse an anonymous request at {NEUTRON_KEYSTONE}: run `make lab-openstack`"
    );
    env
}

/// One HTTP request with curl (the body through stdin, so no secret is on its command line):
/// the status and the headers + body text.
pub fn http(method: &str, url: &str, token: Option<&str>, body: Option<&Value>) -> (u16, String) {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "-i", "-m", "30", "-X", method])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(t) = token {
        cmd.args(["-H", &format!("X-Auth-Token: {t}")]);
    }
    if body.is_some() {
        cmd.args([
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            "@-",
        ]);
    }
    cmd.arg(url);
    let mut child = cmd.spawn().expect("run curl");
    if let Some(mut stdin) = child.stdin.take() {
        if let Some(b) = body {
            stdin
                .write_all(b.to_string().as_bytes())
                .expect("write the request body to curl");
        }
    }
    let out = child.wait_with_output().expect("wait for curl");
    assert!(
        out.status.success(),
        "{method} {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    // The last header block's status line (curl prints "100 Continue" blocks first).
    let status = text
        .split("\r\n\r\n")
        .filter(|b| b.starts_with("HTTP/"))
        .last()
        .and_then(|b| b.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

/// The JSON body of an answer from [`http`].
pub fn body(text: &str) -> Value {
    let b = text.rsplit("\r\n\r\n").next().unwrap_or_default();
    serde_json::from_str(b).unwrap_or(Value::Null)
}

/// A project-scoped password login: the token and its body.
pub fn password_token(
    auth_url: &str,
    user: &str,
    password: &str,
    project: &str,
) -> (String, Value) {
    let req = json!({"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": user, "domain": {"name": "Default"}, "password": password}}},
        "scope": {"project": {"name": project, "domain": {"name": "Default"}}}}});
    let (status, text) = http("POST", &format!("{auth_url}/auth/tokens"), None, Some(&req));
    assert_eq!(
        status,
        201,
        "login of {user} at {auth_url}: {}",
        body(&text)
    );
    let token = text
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("x-subject-token")
                .then(|| v.trim().to_string())
        })
        .expect("X-Subject-Token in Keystone's answer");
    (token, body(&text))
}
