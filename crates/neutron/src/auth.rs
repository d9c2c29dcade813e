//! Authentication to Neutron: none (a fixed endpoint) or a Keystone v3 token (password or
//! application credential). The token is cached and renewed by the first request after 3/4
//! of its lifetime (so none leaves with a token about to expire); a token Neutron refuses
//! (401) is dropped, and the next request logs in again, a second after the refusal (see
//! [`Authenticator::session`]). Logins are serialized: requests arriving while one is in
//! progress wait for it and share its token.
use crate::error::NeutronError;
use serde_json::{json, Value};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// How to log in; the secrets never appear in `Debug` output or logs.
#[derive(Clone)]
pub enum Credentials {
    /// `auth_type = none`: talk to `endpoint` without a token (Neutron's noauth).
    None,
    /// `auth_type = password` (Keystone v3).
    Password {
        username: String,
        password: String,
        user_domain_name: String,
        project_name: String,
        project_domain_name: String,
    },
    /// `auth_type = v3applicationcredential`: by id, or by name with the user's name.
    ApplicationCredential {
        id: Option<String>,
        name: Option<String>,
        username: Option<String>,
        user_domain_name: String,
        secret: String,
    },
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::None => f.write_str("None"),
            Credentials::Password {
                username,
                project_name,
                ..
            } => write!(
                f,
                "Password {{ username: {username:?}, project_name: {project_name:?}, password: <hidden> }}"
            ),
            Credentials::ApplicationCredential { id, name, .. } => write!(
                f,
                "ApplicationCredential {{ id: {id:?}, name: {name:?}, secret: <hidden> }}"
            ),
        }
    }
}

/// Everything needed to reach Neutron.
#[derive(Debug, Clone)]
pub struct AuthSettings {
    pub credentials: Credentials,
    /// Keystone v3 (`http://host:5000/v3`); unused with [`Credentials::None`].
    pub auth_url: Option<String>,
    /// Neutron's URL; without it the Keystone catalog's `network` endpoint is used.
    pub endpoint: Option<String>,
    pub region_name: Option<String>,
    /// `public`, `internal` or `admin` (kuryr-libnetwork's `endpoint_type`).
    pub interface: String,
}

impl AuthSettings {
    pub fn noauth(endpoint: &str) -> AuthSettings {
        AuthSettings {
            credentials: Credentials::None,
            auth_url: None,
            endpoint: Some(endpoint.to_string()),
            region_name: None,
            interface: "public".into(),
        }
    }
}

/// A token and where to use it.
#[derive(Clone)]
pub(crate) struct Session {
    pub token: Option<String>,
    pub endpoint: String,
    renew_at: Option<Instant>,
    /// When the token may expire (login start + lifetime - [`EXPIRY_GRANULARITY`]).
    expires_at: Option<Instant>,
}

pub(crate) struct Authenticator {
    settings: AuthSettings,
    session: Mutex<Option<Session>>,
    logins: AtomicU64,
    /// When Neutron last refused the current token (set by [`Authenticator::invalidate`],
    /// cleared by the next login).
    refused_at: std::sync::Mutex<Option<Instant>>,
    /// `…/v3/auth/tokens`, once found (see [`Authenticator::token_url`]).
    token_url: std::sync::Mutex<Option<String>>,
}

/// Keystone writes `expires_at` truncated to the second, so a token may expire up to this
/// much before `login start + (expires_at - issued_at)`.
const EXPIRY_GRANULARITY: Duration = Duration::from_secs(1);

/// When to renew a token of `lifetime` obtained by a login that started at `started`: after
/// 3/4 of its lifetime, and never later than [`EXPIRY_GRANULARITY`] before it may expire.
/// Measured on this host's monotonic clock, so a skewed Keystone clock does not matter.
fn renew_at(started: Instant, lifetime: Duration) -> Instant {
    started
        + lifetime
            .mul_f64(0.75)
            .min(lifetime.saturating_sub(EXPIRY_GRANULARITY))
}

impl Authenticator {
    pub fn new(settings: AuthSettings) -> Result<Authenticator, NeutronError> {
        match (&settings.credentials, &settings.endpoint, &settings.auth_url) {
            (Credentials::None, None, _) => {
                return Err(NeutronError::Config(
                    "[neutron] auth_type = none needs [neutron] endpoint (Neutron's URL, e.g. http://127.0.0.1:9696)".into(),
                ))
            }
            (Credentials::Password { .. } | Credentials::ApplicationCredential { .. }, _, None) => {
                return Err(NeutronError::Config(
                    "[neutron] auth_url is needed to log in to Keystone (e.g. http://keystone:5000/v3)".into(),
                ))
            }
            _ => {}
        }
        Ok(Authenticator {
            settings,
            session: Mutex::new(None),
            logins: AtomicU64::new(0),
            refused_at: std::sync::Mutex::new(None),
            token_url: std::sync::Mutex::new(None),
        })
    }

    pub fn logins(&self) -> u64 {
        self.logins.load(Ordering::Relaxed)
    }

    /// The current session, logging in if there is none or it is due for renewal. The lock
    /// is held during the login, so concurrent callers wait for one login instead of each
    /// doing their own.
    pub async fn session(&self, http: &reqwest::Client) -> Result<Session, NeutronError> {
        let mut guard = self.session.lock().await;
        let refused_at = self.refused_at.lock().ok().and_then(|r| *r);
        let reason = match guard.as_ref() {
            Some(s) if s.renew_at.is_none_or(|t| Instant::now() < t) => return Ok(s.clone()),
            Some(s) if s.expires_at.is_none_or(|t| Instant::now() < t) => "renewal before expiry",
            // Nothing used the token during its last quarter: it was never sent expired.
            Some(_) => "token expired unused",
            None if refused_at.is_some() => "token refused by Neutron",
            None => "first login",
        };
        if let Some(at) = refused_at {
            // Keystone revokes tokens (password change, user disabled, ...) with events of
            // one-second granularity: a token issued within the same second as the event is
            // revoked too. The event came before Neutron's refusal, so a login a second after
            // the refusal gets a token that is not. Requests wait here, under the lock, for
            // that one login.
            let wait = (at + EXPIRY_GRANULARITY).saturating_duration_since(Instant::now());
            if !wait.is_zero() {
                tracing::debug!(
                    wait_s = wait.as_secs_f64(),
                    "waiting for Keystone's next second before logging in again"
                );
                tokio::time::sleep(wait).await;
            }
        }
        let s = self.login(http, reason).await?;
        if let Ok(mut r) = self.refused_at.lock() {
            *r = None;
        }
        *guard = Some(s.clone());
        Ok(s)
    }

    /// Drops the session whose token Neutron refused, so the next call logs in again. A
    /// token already replaced (by a renewal, or by another request's re-login) is left
    /// alone: its replacement is what the caller retries with.
    pub async fn invalidate(&self, token: &str) {
        let mut guard = self.session.lock().await;
        if guard.as_ref().and_then(|s| s.token.as_deref()) == Some(token) {
            *guard = None;
            if let Ok(mut r) = self.refused_at.lock() {
                *r = Some(Instant::now());
            }
        }
    }

    /// What to check when Keystone refuses these credentials: the `[neutron]` keys in use.
    fn credential_hint(&self) -> String {
        match &self.settings.credentials {
            Credentials::None => String::new(),
            Credentials::Password {
                username,
                user_domain_name,
                project_name,
                project_domain_name,
                ..
            } => format!(
                "user {username} (domain {user_domain_name}) scoped to project {project_name} (domain {project_domain_name}) was refused: check [neutron] username, password, user_domain_name, project_name and project_domain_name in kuryr.conf, and that the user is enabled and has a role on the project"
            ),
            Credentials::ApplicationCredential { id: Some(id), .. } => format!(
                "application credential {id} was refused: check [neutron] application_credential_id and application_credential_secret in kuryr.conf (an application credential can expire or be deleted, and goes with its user)"
            ),
            Credentials::ApplicationCredential { name, username, .. } => format!(
                "application credential {} of user {} was refused: check [neutron] application_credential_name, username, user_domain_name and application_credential_secret in kuryr.conf",
                name.as_deref().unwrap_or("?"),
                username.as_deref().unwrap_or("?")
            ),
        }
    }

    /// `text` with the configured secret replaced: nothing Keystone echoes back may carry it
    /// into an error message or a log.
    fn redact(&self, text: &str) -> String {
        let secret = match &self.settings.credentials {
            Credentials::Password { password, .. } => password,
            Credentials::ApplicationCredential { secret, .. } => secret,
            Credentials::None => return text.to_string(),
        };
        if secret.is_empty() {
            text.to_string()
        } else {
            text.replace(secret.as_str(), "<hidden>")
        }
    }

    fn identity(&self) -> Value {
        match &self.settings.credentials {
            Credentials::None => Value::Null,
            Credentials::Password {
                username,
                password,
                user_domain_name,
                ..
            } => json!({"methods": ["password"], "password": {"user": {
                "name": username, "domain": {"name": user_domain_name}, "password": password}}}),
            Credentials::ApplicationCredential {
                id,
                name,
                username,
                user_domain_name,
                secret,
            } => {
                let mut ac = json!({"secret": secret});
                if let Some(id) = id {
                    ac["id"] = json!(id);
                } else {
                    ac["name"] = json!(name);
                    ac["user"] = json!({"name": username, "domain": {"name": user_domain_name}});
                }
                json!({"methods": ["application_credential"], "application_credential": ac})
            }
        }
    }

    async fn login(&self, http: &reqwest::Client, reason: &str) -> Result<Session, NeutronError> {
        let Some(auth_url) = self.settings.auth_url.as_deref() else {
            // No auth: the endpoint is checked in new().
            return Ok(Session {
                token: None,
                endpoint: self.settings.endpoint.clone().unwrap_or_default(),
                renew_at: None,
                expires_at: None,
            });
        };
        let err = |message: String| NeutronError::Auth {
            auth_url: auth_url.to_string(),
            message,
        };
        let mut body = json!({"auth": {"identity": self.identity()}});
        if let Credentials::Password {
            project_name,
            project_domain_name,
            ..
        } = &self.settings.credentials
        {
            body["auth"]["scope"] = json!({"project": {"name": project_name,
                "domain": {"name": project_domain_name}}});
        }
        let url = self.token_url(http, auth_url).await?;
        let started = Instant::now();
        let resp = http.post(&url).json(&body).send().await.map_err(|e| {
            kuryr_metrics::keystone_request(None, started.elapsed());
            err(format!(
                "cannot reach Keystone to log in: {}. Check that Keystone runs there, or fix [neutron] auth_url",
                crate::error::chain(&e)
            ))
        })?;
        let status = resp.status();
        kuryr_metrics::keystone_request(Some(status.as_u16()), started.elapsed());
        if !status.is_success() {
            let text = resp.text().await.unwrap_or_default();
            let said = self.redact(&crate::client::error_message(&text));
            return Err(err(match status.as_u16() {
                401 | 403 => format!(
                    "login refused ({status}: {said}): {}",
                    self.credential_hint()
                ),
                404 => format!(
                    "login failed ({status}: {said}): {url} does not exist; [neutron] auth_url must be Keystone's v3 URL, e.g. http://keystone:5000/v3"
                ),
                _ => format!("login failed ({status}): {said}"),
            }));
        }
        let token = resp
            .headers()
            .get("x-subject-token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .ok_or_else(|| err("no X-Subject-Token in Keystone's answer".into()))?;
        let v: Value = resp.json().await.map_err(|e| {
            err(format!(
                "unreadable token body ({e}): is [neutron] auth_url Keystone's v3 URL?"
            ))
        })?;
        self.logins.fetch_add(1, Ordering::Relaxed);
        let lifetime = token_lifetime(&v);
        // Without a readable lifetime, assume 800 s: renewed after 10 minutes (Keystone's
        // default lifetime is an hour); a 401 still makes the next request log in again.
        let assumed = lifetime.unwrap_or(Duration::from_secs(800));
        let renew_at = renew_at(started, assumed);
        let expires_at = started + assumed.saturating_sub(EXPIRY_GRANULARITY);
        let endpoint = match &self.settings.endpoint {
            Some(e) => e.clone(),
            None => catalog_endpoint(
                &v,
                &self.settings.interface,
                self.settings.region_name.as_deref(),
            )
            .ok_or_else(|| {
                err(format!(
                    "the token's catalog has no network endpoint (interface {}{}): register Neutron in Keystone or set [neutron] endpoint",
                    self.settings.interface,
                    self.settings
                        .region_name
                        .as_deref()
                        .map(|r| format!(", region {r}"))
                        .unwrap_or_default()
                ))
            })?,
        };
        // Never the token or the secret; the count of these lines is the number of logins.
        tracing::debug!(
            auth_url,
            reason,
            lifetime_s = lifetime.map(|l| l.as_secs_f64()),
            renew_in_s = renew_at.saturating_duration_since(Instant::now()).as_secs_f64(),
            endpoint = %endpoint,
            "logged in to Keystone"
        );
        Ok(Session {
            token: Some(token),
            endpoint,
            renew_at: Some(renew_at),
            expires_at: lifetime.map(|_| expires_at),
        })
    }
}

impl Authenticator {
    /// Where to POST logins. An `auth_url` ending in `/v3` is used as it is; another one (an
    /// unversioned `http://keystone:5000`, as keystoneauth accepts and deployment tools
    /// write) is asked for its versions once, and its v3 API's address is kept.
    async fn token_url(
        &self,
        http: &reqwest::Client,
        auth_url: &str,
    ) -> Result<String, NeutronError> {
        let base = auth_url.trim_end_matches('/');
        if base.ends_with("/v3") {
            return Ok(format!("{base}/auth/tokens"));
        }
        if let Some(url) = self.token_url.lock().ok().and_then(|u| u.clone()) {
            return Ok(url);
        }
        let err = |message: String| NeutronError::Auth {
            auth_url: auth_url.to_string(),
            message,
        };
        let resp = http.get(base).header("Accept", "application/json").send().await.map_err(|e| {
            err(format!(
                "cannot reach Keystone to find its v3 API: {}. Check that Keystone runs there, or fix [neutron] auth_url",
                crate::error::chain(&e)
            ))
        })?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        let doc: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let v3 = match discovered_v3(&doc) {
            Some(v3) => v3,
            None if base.ends_with("/v2.0") => {
                return Err(err(
                    "Keystone's v2.0 API is gone: set [neutron] auth_url to its v3 URL (e.g. http://keystone:5000/v3)".into(),
                ))
            }
            None => {
                return Err(err(format!(
                    "no Keystone v3 API found there (GET answered {status}{}): set [neutron] auth_url to Keystone's v3 URL, e.g. http://keystone:5000/v3",
                    if doc.is_null() { ", not a version document" } else { "" }
                )))
            }
        };
        let url = format!("{}/auth/tokens", v3.trim_end_matches('/'));
        tracing::debug!(auth_url, v3 = %v3, "found Keystone's v3 API");
        if let Ok(mut cached) = self.token_url.lock() {
            *cached = Some(url.clone());
        }
        Ok(url)
    }
}

/// The v3 address in a Keystone version document (`GET /`: `{"versions": {"values": [...]}}`,
/// or one `{"version": ...}`).
fn discovered_v3(doc: &Value) -> Option<String> {
    let versions = doc["versions"]["values"]
        .as_array()
        .cloned()
        .or_else(|| doc.get("version").map(|v| vec![v.clone()]))?;
    versions
        .iter()
        .filter(|v| v["id"].as_str().is_some_and(|id| id.starts_with("v3")))
        .filter(|v| v["status"] != "deprecated")
        .flat_map(|v| v["links"].as_array().into_iter().flatten())
        .find(|l| l["rel"] == "self")
        .and_then(|l| l["href"].as_str())
        .map(str::to_string)
}

/// `expires_at - issued_at` of a v3 token body.
pub(crate) fn token_lifetime(v: &Value) -> Option<Duration> {
    let t = &v["token"];
    let issued = parse_time(t["issued_at"].as_str()?)?;
    let expires = parse_time(t["expires_at"].as_str()?)?;
    // A year is far beyond any token; it also keeps a garbled time from overflowing.
    let lifetime = Duration::try_from_secs_f64(expires - issued).ok()?;
    (lifetime > Duration::ZERO && lifetime < Duration::from_secs(366 * 86_400)).then_some(lifetime)
}

/// Seconds of an ISO 8601 UTC time (`2026-11-22T16:01:51.000000Z`), enough to subtract two.
fn parse_time(s: &str) -> Option<f64> {
    let s = s.trim_end_matches('Z');
    let (date, time) = s.split_once('T')?;
    let mut d = date.split('-').map(|p| p.parse::<i64>());
    let (y, m, day) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    let mut t = time.split(':');
    let (h, mi) = (
        t.next()?.parse::<i64>().ok()?,
        t.next()?.parse::<i64>().ok()?,
    );
    let sec: f64 = t.next()?.parse().ok()?;
    // Years and fields far out of range would overflow; no token has them.
    if !(0..=9999).contains(&y) || !(1..=12).contains(&m) || !(1..=31).contains(&day) {
        return None;
    }
    if !(0..24).contains(&h) || !(0..60).contains(&mi) || !(0.0..61.0).contains(&sec) {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm).
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some((days * 86_400 + h * 3600 + mi * 60) as f64 + sec)
}

pub(crate) fn catalog_endpoint(v: &Value, interface: &str, region: Option<&str>) -> Option<String> {
    let interface = interface.trim_end_matches("URL");
    v["token"]["catalog"]
        .as_array()?
        .iter()
        .filter(|s| s["type"] == "network")
        .flat_map(|s| s["endpoints"].as_array().into_iter().flatten())
        .find(|e| {
            e["interface"] == interface
                && region.is_none_or(|r| e["region_id"] == r || e["region"] == r)
        })
        .and_then(|e| e["url"].as_str())
        .map(|u| u.trim_end_matches('/').to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifetimes_come_from_the_token() {
        let v = json!({"token": {"issued_at": "2026-11-22T23:59:30.000000Z",
            "expires_at": "2026-11-23T00:01:00.500000Z"}});
        assert_eq!(token_lifetime(&v), Some(Duration::from_secs_f64(90.5)));
        assert_eq!(token_lifetime(&json!({})), None);
    }

    #[test]
    fn the_catalog_gives_the_network_endpoint_of_the_interface_and_region() {
        let v = json!({"token": {"catalog": [
            {"type": "identity", "endpoints": [{"interface": "public", "url": "http://k"}]},
            {"type": "network", "endpoints": [
                {"interface": "internal", "region_id": "R1", "url": "http://n-int/"},
                {"interface": "public", "region_id": "R2", "url": "http://n-r2"},
                {"interface": "public", "region_id": "R1", "url": "http://n-pub"}]}]}});
        assert_eq!(
            catalog_endpoint(&v, "public", Some("R1")).as_deref(),
            Some("http://n-pub")
        );
        assert_eq!(
            catalog_endpoint(&v, "internalURL", None).as_deref(),
            Some("http://n-int")
        );
        assert_eq!(catalog_endpoint(&v, "admin", None), None);
    }

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let c = Credentials::Password {
            username: "u".into(),
            password: "s3cret".into(),
            user_domain_name: "Default".into(),
            project_name: "p".into(),
            project_domain_name: "Default".into(),
        };
        assert!(!format!("{c:?}").contains("s3cret"));
        let a = Credentials::ApplicationCredential {
            id: Some("i".into()),
            name: None,
            username: None,
            user_domain_name: "Default".into(),
            secret: "s3cret".into(),
        };
        assert!(!format!("{a:?}").contains("s3cret"));
    }

    #[test]
    fn tokens_are_renewed_at_three_quarters_and_a_second_before_expiry() {
        let t = Instant::now();
        let s = Duration::from_secs;
        assert_eq!(renew_at(t, s(3600)), t + s(2700));
        assert_eq!(renew_at(t, s(20)), t + s(15));
        assert_eq!(renew_at(t, s(2)), t + s(1));
        assert_eq!(renew_at(t, Duration::from_millis(500)), t);
    }

    #[test]
    fn secrets_keystone_echoes_are_redacted() {
        let mut s = AuthSettings::noauth("http://n");
        s.auth_url = Some("http://k/v3".into());
        s.credentials = Credentials::Password {
            username: "u".into(),
            password: "s3cret".into(),
            user_domain_name: "Default".into(),
            project_name: "p".into(),
            project_domain_name: "Default".into(),
        };
        let a = Authenticator::new(s).expect("settings");
        assert_eq!(a.redact("bad value 's3cret'"), "bad value '<hidden>'");
        let hint = a.credential_hint();
        assert!(hint.contains("[neutron] username, password"), "{hint}");
        assert!(!hint.contains("s3cret"), "{hint}");
    }

    #[test]
    fn the_v3_api_is_found_in_keystones_version_document() {
        let doc = json!({"versions": {"values": [
            {"id": "v2.0", "status": "deprecated", "links": [{"rel": "self", "href": "http://k:5000/v2.0/"}]},
            {"id": "v3.14", "status": "stable", "links": [
                {"rel": "describedby", "href": "https://docs"},
                {"rel": "self", "href": "http://k:5000/v3/"}]}]}});
        assert_eq!(discovered_v3(&doc).as_deref(), Some("http://k:5000/v3/"));
        let one = json!({"version": {"id": "v3.14", "status": "stable",
            "links": [{"rel": "self", "href": "http://k/identity/v3/"}]}});
        assert_eq!(
            discovered_v3(&one).as_deref(),
            Some("http://k/identity/v3/")
        );
        assert_eq!(discovered_v3(&json!({"error": "no"})), None);
    }

    #[test]
    fn settings_that_cannot_work_are_refused() {
        let mut s = AuthSettings::noauth("http://x");
        s.endpoint = None;
        assert!(Authenticator::new(s).is_err());
    }
}
