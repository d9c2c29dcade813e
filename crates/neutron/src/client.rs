//! Neutron v2 REST: networks, subnets, subnet pools, ports, tags and security groups.
use crate::auth::{AuthSettings, Authenticator};
use crate::error::NeutronError;
use crate::types::*;
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Extra client settings (`[neutron] cafile`, `insecure`, `timeout`).
#[derive(Debug, Clone, Default)]
pub struct HttpSettings {
    pub ca_file: Option<std::path::PathBuf>,
    pub insecure: bool,
    pub timeout: Option<Duration>,
}

/// A Neutron v2 client. Cheap to share (`Arc`); safe to call concurrently.
pub struct NeutronClient {
    http: reqwest::Client,
    auth: Authenticator,
    calls: AtomicU64,
    refused: AtomicU64,
}

/// `v[key]`, taken out; `null` when `v` is not an object or has no such key (indexing a
/// string or an array with a key, as `v[key]` would, panics: a proxy may answer anything).
pub(crate) fn take_key(v: &mut Value, key: &str) -> Value {
    v.get_mut(key).map(Value::take).unwrap_or(Value::Null)
}

/// The `NeutronError` message out of Neutron's or Keystone's error body.
pub(crate) fn error_message(body: &str) -> String {
    let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let m = v["NeutronError"]["message"]
        .as_str()
        .or_else(|| v["error"]["message"].as_str())
        .or_else(|| v["message"].as_str());
    match m {
        Some(m) => m.to_string(),
        None => body
            .chars()
            .take(300)
            .collect::<String>()
            .trim()
            .to_string(),
    }
}

/// The resource a request path is about (`/ports/ID/tags/X?...` is `ports`): a metric label
/// from the few collections kuryr uses, never an id.
fn resource_of(path: &str) -> &str {
    let p = path.trim_start_matches('/');
    let end = p.find(['/', '?']).unwrap_or(p.len());
    match &p[..end] {
        "" => "root",
        r => r,
    }
}

fn query(filters: &[(&str, &str)]) -> String {
    let mut q = String::new();
    for (i, (k, v)) in filters.iter().enumerate() {
        q.push(if i == 0 { '?' } else { '&' });
        q.push_str(&encode(k));
        q.push('=');
        q.push_str(&encode(v));
    }
    q
}

pub(crate) fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b':' | b',' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

impl NeutronClient {
    pub fn new(auth: AuthSettings, http: HttpSettings) -> Result<NeutronClient, NeutronError> {
        let mut b = reqwest::Client::builder()
            .timeout(http.timeout.unwrap_or(Duration::from_secs(60)))
            .connect_timeout(Duration::from_secs(5))
            // Neutron under uwsgi (http-socket) closes each connection after its answer; a
            // pooled connection would fail the next request ("connection closed before
            // message completed"). New loopback/LAN connections cost far less than Neutron.
            .pool_max_idle_per_host(0)
            .danger_accept_invalid_certs(http.insecure);
        if let Some(ca) = &http.ca_file {
            let pem = std::fs::read(ca).map_err(|e| {
                NeutronError::Config(format!("[neutron] cafile {}: {e}", ca.display()))
            })?;
            let cert = reqwest::Certificate::from_pem(&pem).map_err(|e| {
                NeutronError::Config(format!(
                    "[neutron] cafile {}: not a PEM certificate: {e}",
                    ca.display()
                ))
            })?;
            b = b.add_root_certificate(cert);
        }
        let http = b
            .build()
            .map_err(|e| NeutronError::Config(format!("HTTP client: {e}")))?;
        Ok(NeutronClient {
            http,
            auth: Authenticator::new(auth)?,
            calls: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        })
    }

    /// Neutron requests sent so far (Keystone logins not included).
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// Keystone logins so far.
    pub fn logins(&self) -> u64 {
        self.auth.logins()
    }

    /// Requests Neutron answered with 401 (each was retried once with a fresh token, or
    /// failed if the fresh one was refused too).
    pub fn tokens_refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// One request; a 401 makes it log in again and retry once. A second 401 is an error:
    /// Keystone accepted the credentials but Neutron refuses what they give, which another
    /// login would not change.
    pub(crate) async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        if_match: Option<u64>,
        what: &(dyn Fn() -> String + Sync),
    ) -> Result<Option<Value>, NeutronError> {
        let mut retried = false;
        loop {
            let session = self.auth.session(&self.http).await?;
            let url = format!("{}/v2.0{path}", session.endpoint.trim_end_matches('/'));
            let mut req = self.http.request(method.clone(), &url);
            if let Some(t) = &session.token {
                req = req.header("X-Auth-Token", t);
            }
            if let Some(rev) = if_match {
                req = req.header("If-Match", format!("revision_number={rev}"));
            }
            if let Some(b) = body {
                req = req.json(b);
            }
            self.calls.fetch_add(1, Ordering::Relaxed);
            let started = std::time::Instant::now();
            let resource = resource_of(path);
            let resp = req.send().await.map_err(|source| {
                kuryr_metrics::neutron_request(method.as_str(), resource, None, started.elapsed());
                NeutronError::Transport {
                    what: what(),
                    url: session.endpoint.clone(),
                    source,
                }
            })?;
            let status = resp.status();
            kuryr_metrics::neutron_request(
                method.as_str(),
                resource,
                Some(status.as_u16()),
                started.elapsed(),
            );
            // One line per request (no token, no body): what `RUST_LOG=kuryr_neutron=debug` shows.
            tracing::debug!(%method, path, status = status.as_u16(),
                ms = started.elapsed().as_secs_f64() * 1000.0, "Neutron request");
            if status == StatusCode::UNAUTHORIZED {
                if let Some(t) = &session.token {
                    self.refused.fetch_add(1, Ordering::Relaxed);
                    if !retried {
                        tracing::info!(
                            what = %what(),
                            neutron = %session.endpoint,
                            "Neutron refused the Keystone token (401): logging in again and retrying once"
                        );
                        self.auth.invalidate(t).await;
                        retried = true;
                        continue;
                    }
                }
            }
            if status == StatusCode::NO_CONTENT {
                return Ok(None);
            }
            let text = resp
                .text()
                .await
                .map_err(|source| NeutronError::Transport {
                    what: what(),
                    url: session.endpoint.clone(),
                    source,
                })?;
            if !status.is_success() {
                let mut message = error_message(&text);
                if status == StatusCode::UNAUTHORIZED {
                    message.push_str(if session.token.is_some() {
                        " (a fresh Keystone token was refused too: check that the [neutron] user has a role on its project that Neutron accepts, and that Neutron validates tokens against the Keystone of [neutron] auth_url)"
                    } else {
                        " (Neutron wants a Keystone token: set [neutron] auth_type = password or v3applicationcredential, with auth_url and the credentials)"
                    });
                }
                return Err(NeutronError::Http {
                    what: what(),
                    status: status.as_u16(),
                    message,
                });
            }
            if text.trim().is_empty() {
                return Ok(None);
            }
            return serde_json::from_str(&text)
                .map(Some)
                .map_err(|e| NeutronError::Decode {
                    what: what(),
                    message: e.to_string(),
                });
        }
    }

    pub(crate) fn decode<T: DeserializeOwned>(
        v: Option<Value>,
        key: &str,
        what: &(dyn Fn() -> String + Sync),
    ) -> Result<T, NeutronError> {
        let mut v = v.ok_or_else(|| NeutronError::Decode {
            what: what(),
            message: "empty body".into(),
        })?;
        serde_json::from_value(take_key(&mut v, key)).map_err(|e| NeutronError::Decode {
            what: what(),
            message: format!("{key}: {e}"),
        })
    }

    async fn list<T: DeserializeOwned>(
        &self,
        collection: &str,
        filters: &[(&str, &str)],
    ) -> Result<Vec<T>, NeutronError> {
        let what = || {
            let f: Vec<String> = filters.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!("list {collection} ({})", f.join(", "))
        };
        let path = format!("/{collection}{}", query(filters));
        let v = self.request(Method::GET, &path, None, None, &what).await?;
        Self::decode(v, collection, &what)
    }

    async fn show<T: DeserializeOwned>(
        &self,
        collection: &str,
        key: &str,
        id: &str,
    ) -> Result<T, NeutronError> {
        let what = || format!("show {key} {id}");
        let v = self
            .request(
                Method::GET,
                &format!("/{collection}/{}", encode(id)),
                None,
                None,
                &what,
            )
            .await?;
        Self::decode(v, key, &what)
    }

    async fn create<T: DeserializeOwned>(
        &self,
        collection: &str,
        key: &str,
        body: Value,
        what: &(dyn Fn() -> String + Sync),
    ) -> Result<T, NeutronError> {
        let v = self
            .request(
                Method::POST,
                &format!("/{collection}"),
                Some(&json!({ key: body })),
                None,
                what,
            )
            .await?;
        Self::decode(v, key, what)
    }

    async fn update<T: DeserializeOwned>(
        &self,
        collection: &str,
        key: &str,
        id: &str,
        body: Value,
        if_match: Option<u64>,
    ) -> Result<T, NeutronError> {
        let what = || format!("update {key} {id}");
        let v = self
            .request(
                Method::PUT,
                &format!("/{collection}/{}", encode(id)),
                Some(&json!({ key: body })),
                if_match,
                &what,
            )
            .await?;
        Self::decode(v, key, &what)
    }

    /// Deletes; an object already gone is success.
    async fn delete(&self, collection: &str, key: &str, id: &str) -> Result<(), NeutronError> {
        let what = || format!("delete {key} {id}");
        match self
            .request(
                Method::DELETE,
                &format!("/{collection}/{}", encode(id)),
                None,
                None,
                &what,
            )
            .await
        {
            Err(e) if e.is_not_found() => Ok(()),
            r => r.map(|_| ()),
        }
    }

    // Networks

    pub async fn networks(&self, filters: &[(&str, &str)]) -> Result<Vec<Network>, NeutronError> {
        self.list("networks", filters).await
    }
    pub async fn network(&self, id: &str) -> Result<Network, NeutronError> {
        self.show("networks", "network", id).await
    }
    pub async fn create_network(&self, body: Value) -> Result<Network, NeutronError> {
        let name = body["name"].as_str().unwrap_or_default().to_string();
        self.create("networks", "network", body, &|| {
            format!("create network {name}")
        })
        .await
    }
    pub async fn delete_network(&self, id: &str) -> Result<(), NeutronError> {
        self.delete("networks", "network", id).await
    }

    // Subnets

    pub async fn subnets(&self, filters: &[(&str, &str)]) -> Result<Vec<Subnet>, NeutronError> {
        self.list("subnets", filters).await
    }
    pub async fn subnet(&self, id: &str) -> Result<Subnet, NeutronError> {
        self.show("subnets", "subnet", id).await
    }
    pub async fn create_subnet(&self, body: Value) -> Result<Subnet, NeutronError> {
        let name = body["name"].as_str().unwrap_or_default().to_string();
        self.create("subnets", "subnet", body, &|| {
            format!("create subnet {name}")
        })
        .await
    }
    pub async fn delete_subnet(&self, id: &str) -> Result<(), NeutronError> {
        self.delete("subnets", "subnet", id).await
    }

    // Subnet pools

    pub async fn subnetpools(
        &self,
        filters: &[(&str, &str)],
    ) -> Result<Vec<SubnetPool>, NeutronError> {
        self.list("subnetpools", filters).await
    }
    pub async fn subnetpool(&self, id: &str) -> Result<SubnetPool, NeutronError> {
        self.show("subnetpools", "subnetpool", id).await
    }
    pub async fn create_subnetpool(&self, body: Value) -> Result<SubnetPool, NeutronError> {
        let name = body["name"].as_str().unwrap_or_default().to_string();
        self.create("subnetpools", "subnetpool", body, &|| {
            format!("create subnet pool {name}")
        })
        .await
    }
    pub async fn delete_subnetpool(&self, id: &str) -> Result<(), NeutronError> {
        self.delete("subnetpools", "subnetpool", id).await
    }

    // Ports

    pub async fn ports(&self, filters: &[(&str, &str)]) -> Result<Vec<Port>, NeutronError> {
        self.list("ports", filters).await
    }
    pub async fn port(&self, id: &str) -> Result<Port, NeutronError> {
        self.show("ports", "port", id).await
    }
    pub async fn create_port(&self, body: Value) -> Result<Port, NeutronError> {
        let net = body["network_id"].as_str().unwrap_or_default().to_string();
        self.create("ports", "port", body, &|| {
            format!("create port on network {net}")
        })
        .await
    }
    /// Creates several ports in one request (Neutron's bulk create: all or none).
    pub async fn create_ports(&self, bodies: Vec<Value>) -> Result<Vec<Port>, NeutronError> {
        let n = bodies.len();
        let what = || format!("create {n} ports");
        let v = self
            .request(
                Method::POST,
                "/ports",
                Some(&json!({ "ports": bodies })),
                None,
                &what,
            )
            .await?;
        Self::decode(v, "ports", &what)
    }
    /// Updates a port; with `revision`, only if nobody changed it since (412 otherwise).
    pub async fn update_port(
        &self,
        id: &str,
        body: Value,
        revision: Option<u64>,
    ) -> Result<Port, NeutronError> {
        self.update("ports", "port", id, body, revision).await
    }
    pub async fn delete_port(&self, id: &str) -> Result<(), NeutronError> {
        self.delete("ports", "port", id).await
    }

    // Tags (standard-attr-tag)

    /// Adds one tag; adding a tag that is there already is success.
    pub async fn add_tag(&self, resource: &str, id: &str, tag: &str) -> Result<(), NeutronError> {
        let what = || format!("tag {} {id} with {tag}", singular(resource));
        self.request(
            Method::PUT,
            &format!("/{resource}/{}/tags/{}", encode(id), encode(tag)),
            None,
            None,
            &what,
        )
        .await
        .map(|_| ())
    }
    /// Removes one tag; a tag not there is success.
    pub async fn remove_tag(
        &self,
        resource: &str,
        id: &str,
        tag: &str,
    ) -> Result<(), NeutronError> {
        let what = || format!("remove tag {tag} from {} {id}", singular(resource));
        match self
            .request(
                Method::DELETE,
                &format!("/{resource}/{}/tags/{}", encode(id), encode(tag)),
                None,
                None,
                &what,
            )
            .await
        {
            Err(e) if e.is_not_found() => Ok(()),
            r => r.map(|_| ()),
        }
    }
    /// Replaces all tags of an object (one call instead of one per tag).
    pub async fn set_tags(
        &self,
        resource: &str,
        id: &str,
        tags: &[String],
    ) -> Result<(), NeutronError> {
        let what = || format!("set tags of {} {id}", singular(resource));
        self.request(
            Method::PUT,
            &format!("/{resource}/{}/tags", encode(id)),
            Some(&json!({ "tags": tags })),
            None,
            &what,
        )
        .await
        .map(|_| ())
    }

    // Security groups

    pub async fn security_groups(
        &self,
        filters: &[(&str, &str)],
    ) -> Result<Vec<SecurityGroup>, NeutronError> {
        // The path has a dash, the collection key an underscore.
        let what = || format!("list security groups ({filters:?})");
        let path = format!("/security-groups{}", query(filters));
        let v = self.request(Method::GET, &path, None, None, &what).await?;
        Self::decode(v, "security_groups", &what)
    }
    pub async fn create_security_group(
        &self,
        name: &str,
        description: &str,
    ) -> Result<SecurityGroup, NeutronError> {
        let what = || format!("create security group {name}");
        let v = self
            .request(
                Method::POST,
                "/security-groups",
                Some(&json!({"security_group": {"name": name, "description": description}})),
                None,
                &what,
            )
            .await?;
        Self::decode(v, "security_group", &what)
    }
    /// Creates several rules in one request (Neutron's bulk create).
    pub async fn create_security_group_rules(
        &self,
        rules: Vec<Value>,
    ) -> Result<Vec<SecurityGroupRule>, NeutronError> {
        let what = || "create security group rules".to_string();
        let v = self
            .request(
                Method::POST,
                "/security-group-rules",
                Some(&json!({ "security_group_rules": rules })),
                None,
                &what,
            )
            .await?;
        Self::decode(v, "security_group_rules", &what)
    }
    pub async fn delete_security_group(&self, id: &str) -> Result<(), NeutronError> {
        self.delete("security-groups", "security group", id).await
    }

    /// Whether an API extension (e.g. `standard-attr-tag`) is loaded.
    pub async fn has_extension(&self, alias: &str) -> Result<bool, NeutronError> {
        let what = || format!("show extension {alias}");
        match self
            .request(
                Method::GET,
                &format!("/extensions/{}", encode(alias)),
                None,
                None,
                &what,
            )
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }
}

fn singular(resource: &str) -> &str {
    match resource {
        "networks" => "network",
        "subnets" => "subnet",
        "subnetpools" => "subnet pool",
        "ports" => "port",
        "security-groups" => "security group",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_are_encoded_but_tag_lists_keep_their_commas() {
        assert_eq!(
            query(&[("name", "kuryrPool-10.0.0.0/24"), ("tags", "a:b,c")]),
            "?name=kuryrPool-10.0.0.0%2F24&tags=a:b,c"
        );
        assert_eq!(
            query(&[("fixed_ips", "ip_address=fd00::5")]),
            "?fixed_ips=ip_address%3Dfd00::5"
        );
    }

    #[test]
    fn resources_are_collections_not_ids() {
        assert_eq!(resource_of("/ports/abc/tags/x"), "ports");
        assert_eq!(resource_of("/subnets?tags=a"), "subnets");
        assert_eq!(resource_of("/extensions"), "extensions");
        assert_eq!(resource_of(""), "root");
    }

    #[test]
    fn error_messages_come_from_neutron_bodies() {
        assert_eq!(
            error_message(
                r#"{"NeutronError": {"type": "X", "message": "Network abc could not be found.", "detail": ""}}"#
            ),
            "Network abc could not be found."
        );
        assert_eq!(
            error_message(
                r#"{"error": {"code": 401, "message": "The request you have made requires authentication."}}"#
            ),
            "The request you have made requires authentication."
        );
        assert_eq!(error_message("plain"), "plain");
    }
}
