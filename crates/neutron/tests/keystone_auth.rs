//! Keystone authentication of the Neutron client against a fake Keystone + Neutron served
//! on loopback by this test (no lab needed): tokens renewed before they expire, one login and
//! one retry on a 401, no loop on a persistent 401, one login for many concurrent requests,
//! and errors that name what to fix without the secret.
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use kuryr_neutron::{AuthSettings, Credentials, HttpSettings, NeutronClient, NeutronError};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const PASSWORD: &str = "pa55-Word-under-test";
const SECRET: &str = "app-cred-s3cret-under-test";

/// What the fake saw, and how it behaves.
#[derive(Default)]
struct Fake {
    base: String,
    /// Lifetime of the tokens it issues.
    lifetime: Duration,
    /// How long a login takes.
    login_delay: Duration,
    /// Tokens issued: when each expires (on the fake's monotonic clock) and when it was
    /// issued (wall clock, for revocations).
    tokens: Mutex<HashMap<String, (Instant, SystemTime)>>,
    /// Keystone's last revocation event for the user: tokens issued before it, or within
    /// the same second (Keystone truncates issued_at to the second), are revoked.
    revoked_at: Mutex<Option<SystemTime>>,
    /// Neutron refuses every token, valid or not.
    refuse_all: AtomicBool,
    logins: AtomicU64,
    logins_in_progress: AtomicU64,
    concurrent_logins: AtomicU64,
    neutron_requests: AtomicU64,
    /// 401s Neutron answered (for any reason).
    refused: AtomicU64,
    /// Requests that reached Neutron with a token past its expiry.
    expired: AtomicU64,
    /// GETs of Keystone's version document.
    discoveries: AtomicU64,
}

impl Fake {
    /// What disabling the user or changing its password does in Keystone: a revocation
    /// event now. Done early in a second, so that a login right after it, within the same
    /// second, would get a revoked token too.
    async fn revoke(&self) {
        let subsec = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .subsec_millis();
        if subsec > 100 {
            tokio::time::sleep(Duration::from_millis(u64::from(1000 - subsec) + 10)).await;
        }
        *self.revoked_at.lock().expect("revoked_at") = Some(SystemTime::now());
    }
    fn count(&self, c: &AtomicU64) -> u64 {
        c.load(Ordering::SeqCst)
    }
}

/// A v3 time as Keystone writes it, with microseconds (`2026-11-22T17:56:00.123456Z`).
fn iso(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (proleptic Gregorian).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_micros()
    )
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        Json(json!({"error": {"code": 401, "title": "Unauthorized",
            "message": "The request you have made requires authentication."}})),
    )
        .into_response()
}

/// POST /v3/auth/tokens: password or application-credential login.
async fn keystone_login(State(f): State<Arc<Fake>>, body: String) -> Response {
    let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let id = &v["auth"]["identity"];
    let ok = id["password"]["user"]["password"] == PASSWORD
        || id["application_credential"]["secret"] == SECRET;
    if !ok {
        return unauthorized();
    }
    let now_in = f.logins_in_progress.fetch_add(1, Ordering::SeqCst) + 1;
    f.concurrent_logins.fetch_max(now_in, Ordering::SeqCst);
    tokio::time::sleep(f.login_delay).await;
    f.logins_in_progress.fetch_sub(1, Ordering::SeqCst);
    let n = f.logins.fetch_add(1, Ordering::SeqCst) + 1;
    let token = format!("token-{n}-{}", uuid::Uuid::new_v4().simple());
    let issued = SystemTime::now();
    f.tokens
        .lock()
        .expect("tokens")
        .insert(token.clone(), (Instant::now() + f.lifetime, issued));
    let body = json!({"token": {
        "issued_at": iso(issued),
        "expires_at": iso(issued + f.lifetime),
        "catalog": [
            {"type": "identity", "endpoints": [
                {"interface": "public", "region_id": "RegionOne", "url": format!("{}/v3", f.base)}]},
            {"type": "network", "endpoints": [
                {"interface": "internal", "region_id": "RegionOne", "url": "http://127.0.0.1:9"},
                {"interface": "public", "region_id": "RegionOne", "url": f.base.clone()}]}]}});
    (
        StatusCode::CREATED,
        [("X-Subject-Token", token)],
        Json(body),
    )
        .into_response()
}

/// GET /: Keystone's version document, as Keystone answers an unversioned URL.
async fn keystone_versions(State(f): State<Arc<Fake>>) -> Response {
    f.discoveries.fetch_add(1, Ordering::SeqCst);
    let doc = json!({"versions": {"values": [{"id": "v3.14", "status": "stable",
        "links": [{"rel": "self", "href": format!("{}/v3/", f.base)}]}]}});
    (StatusCode::MULTIPLE_CHOICES, Json(doc)).into_response()
}

/// GET /v2.0/networks behind keystonemiddleware: 401 unless the token is valid.
async fn neutron_networks(State(f): State<Arc<Fake>>, headers: HeaderMap) -> Response {
    f.neutron_requests.fetch_add(1, Ordering::SeqCst);
    let token = headers
        .get("x-auth-token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let issued = f.tokens.lock().expect("tokens").get(token).copied();
    let revoked_at = *f.revoked_at.lock().expect("revoked_at");
    let secs = |t: SystemTime| {
        t.duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64()
    };
    let valid = match issued {
        Some((expires, _)) if Instant::now() >= expires => {
            f.expired.fetch_add(1, Ordering::SeqCst);
            false
        }
        Some((_, issued)) if revoked_at.is_some_and(|r| secs(issued).floor() <= secs(r)) => false,
        Some(_) => !f.refuse_all.load(Ordering::SeqCst),
        None => false,
    };
    if !valid {
        f.refused.fetch_add(1, Ordering::SeqCst);
        return unauthorized();
    }
    Json(json!({"networks": []})).into_response()
}

/// Serves the fake on 127.0.0.1 (a port of its own) until the test's runtime ends.
async fn serve(lifetime: Duration, login_delay: Duration) -> Arc<Fake> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    let addr = listener.local_addr().expect("local address");
    let fake = Arc::new(Fake {
        base: format!("http://{addr}"),
        lifetime,
        login_delay,
        ..Fake::default()
    });
    let app = Router::new()
        .route("/", get(keystone_versions))
        .route("/v3/auth/tokens", post(keystone_login))
        .route("/v2.0/networks", get(neutron_networks))
        .with_state(fake.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    fake
}

/// A client logging in with a password; Neutron's URL comes from the token's catalog.
fn password_client(fake: &Fake, password: &str) -> NeutronClient {
    password_client_at(&format!("{}/v3", fake.base), password)
}

fn password_client_at(auth_url: &str, password: &str) -> NeutronClient {
    let auth = AuthSettings {
        credentials: Credentials::Password {
            username: "kuryr".into(),
            password: password.into(),
            user_domain_name: "Default".into(),
            project_name: "service".into(),
            project_domain_name: "Default".into(),
        },
        auth_url: Some(auth_url.into()),
        endpoint: None,
        region_name: Some("RegionOne".into()),
        interface: "public".into(),
    };
    NeutronClient::new(auth, HttpSettings::default()).expect("client settings")
}

async fn list(c: &NeutronClient) -> Result<(), NeutronError> {
    tokio::time::timeout(Duration::from_secs(20), c.networks(&[]))
        .await
        .expect("a Neutron call took over 20 s: is it looping?")
        .map(|_| ())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_second_tokens_are_renewed_before_they_expire() {
    let fake = serve(Duration::from_secs(2), Duration::ZERO).await;
    let c = password_client(&fake, PASSWORD);
    let start = Instant::now();
    let mut calls = 0;
    while start.elapsed() < Duration::from_millis(5500) {
        list(&c).await.expect("list networks");
        calls += 1;
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    assert_eq!(
        fake.count(&fake.expired),
        0,
        "a request reached Neutron with an expired token"
    );
    assert_eq!(fake.count(&fake.refused), 0, "Neutron refused a token");
    assert_eq!(fake.count(&fake.neutron_requests), calls);
    // Renewed about every second (3/4 of 2 s, capped at 1 s before expiry): 5.5 s of calls
    // take 6 logins, give or take one for scheduling; not one per request.
    let logins = fake.count(&fake.logins);
    assert!(
        (5..=7).contains(&logins),
        "{logins} logins for {calls} calls"
    );
    assert_eq!(c.logins(), logins);
    assert_eq!(c.tokens_refused(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_token_makes_exactly_one_login_and_one_retry() {
    let fake = serve(Duration::from_secs(3600), Duration::ZERO).await;
    let c = password_client(&fake, PASSWORD);
    list(&c).await.expect("first call");
    assert_eq!(fake.count(&fake.logins), 1);
    fake.revoke().await;
    let refused = Instant::now();
    list(&c)
        .await
        .expect("the call after the revocation succeeds");
    // The new login waited for Keystone's next second: a token from the same second as the
    // revocation event would be revoked too.
    assert!(refused.elapsed() >= Duration::from_millis(950));
    assert_eq!(fake.count(&fake.logins), 2, "one login after the 401");
    assert_eq!(fake.count(&fake.refused), 1, "one 401");
    assert_eq!(
        fake.count(&fake.neutron_requests),
        3,
        "first call, the refused try, its retry"
    );
    assert_eq!((c.logins(), c.tokens_refused()), (2, 1));
    // The new token is kept: the next call needs no login.
    list(&c).await.expect("third call");
    assert_eq!(fake.count(&fake.logins), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_persistent_401_fails_after_one_retry() {
    let fake = serve(Duration::from_secs(3600), Duration::ZERO).await;
    fake.refuse_all.store(true, Ordering::SeqCst);
    let c = password_client(&fake, PASSWORD);
    let e = list(&c).await.expect_err("every token is refused");
    assert_eq!(e.status(), Some(401), "{e}");
    let msg = e.to_string();
    assert!(msg.contains("list networks"), "{msg}");
    assert!(
        msg.contains("a fresh Keystone token was refused too"),
        "{msg}"
    );
    assert!(msg.contains("[neutron]"), "{msg}");
    assert_eq!(fake.count(&fake.logins), 2, "the first login and one more");
    assert_eq!(fake.count(&fake.neutron_requests), 2, "one try, one retry");
    // The next call does the same, once: bounded, no loop.
    list(&c).await.expect_err("still refused");
    assert_eq!(fake.count(&fake.logins), 3);
    assert_eq!(fake.count(&fake.neutron_requests), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_share_one_login_at_start_at_renewal_and_after_a_401() {
    // Logins take 300 ms, so concurrent requests pile up behind the one in progress.
    let fake = serve(Duration::from_secs(4), Duration::from_millis(300)).await;
    let c = Arc::new(password_client(&fake, PASSWORD));
    let wave = |c: Arc<NeutronClient>| async move {
        let calls: Vec<_> = (0..16)
            .map(|_| {
                let c = c.clone();
                tokio::spawn(async move { list(&c).await })
            })
            .collect();
        for call in calls {
            call.await.expect("task").expect("list networks");
        }
    };
    let start = Instant::now();
    wave(c.clone()).await;
    assert_eq!(fake.count(&fake.logins), 1, "16 requests at start");
    // Past 3/4 of the first token's 4 s (it is still valid): the next requests renew it.
    tokio::time::sleep(Duration::from_millis(3200).saturating_sub(start.elapsed())).await;
    wave(c.clone()).await;
    assert_eq!(fake.count(&fake.logins), 2, "16 requests at renewal");
    fake.revoke().await;
    wave(c.clone()).await;
    assert_eq!(fake.count(&fake.logins), 3, "16 requests refused with 401");
    assert_eq!(fake.count(&fake.concurrent_logins), 1, "logins overlapped");
    assert_eq!(fake.count(&fake.expired), 0);
    // Every request of the third wave normally tries the revoked token first (a task the
    // scheduler starts late may already find the new one); none is refused twice.
    let refused = fake.count(&fake.refused);
    assert!((1..=16).contains(&refused), "{refused} refusals");
    assert_eq!(fake.count(&fake.neutron_requests), 16 * 3 + refused);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_names_keystone_and_the_keys_and_hides_the_password() {
    let fake = serve(Duration::from_secs(3600), Duration::ZERO).await;
    let wrong = "not-the-Pa55word";
    let c = password_client(&fake, wrong);
    let e = list(&c).await.expect_err("wrong password");
    let msg = e.to_string();
    assert!(
        msg.contains(&format!("Keystone at {}/v3", fake.base)),
        "{msg}"
    );
    assert!(msg.contains("401"), "{msg}");
    for key in ["username", "password", "user_domain_name", "project_name"] {
        assert!(msg.contains(key), "{key} missing from: {msg}");
    }
    assert!(!msg.contains(wrong), "{msg}");
    assert_eq!(fake.count(&fake.neutron_requests), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn application_credentials_log_in_and_a_wrong_secret_names_the_keys() {
    let fake = serve(Duration::from_secs(3600), Duration::ZERO).await;
    let client = |secret: &str| {
        let auth = AuthSettings {
            credentials: Credentials::ApplicationCredential {
                id: Some("0123abcd".into()),
                name: None,
                username: None,
                user_domain_name: "Default".into(),
                secret: secret.into(),
            },
            auth_url: Some(format!("{}/v3", fake.base)),
            endpoint: None,
            region_name: None,
            interface: "public".into(),
        };
        NeutronClient::new(auth, HttpSettings::default()).expect("client settings")
    };
    list(&client(SECRET)).await.expect("application credential");
    let wrong = "wrong-s3cret-value";
    let msg = list(&client(wrong))
        .await
        .expect_err("wrong secret")
        .to_string();
    assert!(msg.contains("application credential 0123abcd"), "{msg}");
    assert!(msg.contains("application_credential_secret"), "{msg}");
    assert!(!msg.contains(wrong), "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_auth_against_a_neutron_that_wants_tokens_says_to_set_auth_type() {
    let fake = serve(Duration::from_secs(3600), Duration::ZERO).await;
    let c = NeutronClient::new(AuthSettings::noauth(&fake.base), HttpSettings::default())
        .expect("client settings");
    let msg = list(&c).await.expect_err("no token").to_string();
    assert!(msg.contains("auth_type = password"), "{msg}");
    assert_eq!(
        fake.count(&fake.neutron_requests),
        1,
        "no retry without a token"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_keystone_says_why_and_names_auth_url() {
    // A loopback port nobody listens on: bind one, note it, close it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let fake = Fake {
        base: format!("http://127.0.0.1:{port}"),
        ..Fake::default()
    };
    let msg = list(&password_client(&fake, PASSWORD))
        .await
        .expect_err("nobody listens")
        .to_string();
    assert!(msg.contains("cannot reach Keystone"), "{msg}");
    assert!(msg.contains("[neutron] auth_url"), "{msg}");
    assert!(msg.to_lowercase().contains("refused"), "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unversioned_auth_url_finds_the_v3_api_once() {
    let fake = serve(Duration::from_secs(3600), Duration::ZERO).await;
    // As deployment tools write it for keystoneauth: no /v3.
    let c = password_client_at(&format!("{}/", fake.base), PASSWORD);
    list(&c).await.expect("login through the discovered v3 API");
    fake.revoke().await;
    list(&c).await.expect("a second login");
    assert_eq!(fake.count(&fake.logins), 2);
    assert_eq!(fake.count(&fake.discoveries), 1, "versions asked once");
}
