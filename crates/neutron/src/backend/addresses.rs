//! The address calls of the Neutron mode: RequestAddress makes (or takes from a pool, or
//! adopts) the port holding an address; ReleaseAddress deletes it, gives it back to its pool or
//! hands an adopted port back as it was found.
use super::*;

impl NeutronBackend {
    pub(super) async fn request_address_now(
        &self,
        req: &AddressRequest,
    ) -> Result<IpNet, BackendError> {
        let subnet = self.pool_subnet(&req.pool_id, req.preferred).await?;
        if req.gateway {
            return match (subnet, req.preferred) {
                (Some(s), pref) => {
                    let gw = s.gateway_ip.as_deref().and_then(parse_ip).ok_or_else(|| {
                        BackendError::Invalid(format!(
                            "subnet {} ({}) has no gateway",
                            s.id, s.cidr
                        ))
                    })?;
                    if pref.is_some_and(|p| p != gw) {
                        return Err(BackendError::Conflict(format!(
                            "subnet {} ({}) has gateway {gw}, not {}",
                            s.id,
                            s.cidr,
                            pref.map(|p| p.to_string()).unwrap_or_default()
                        )));
                    }
                    with_prefix(gw, &s.cidr)
                }
                (None, pref) => {
                    let cidr = self.pool_cidr(&req.pool_id).await?;
                    // kuryr-libnetwork fails here without --gateway; Neutron's own choice
                    // is the first address, so hand that out.
                    let ip = pref.or_else(|| cidr.hosts().next()).ok_or_else(|| {
                        BackendError::Invalid(format!("pool {cidr} has no address for a gateway"))
                    })?;
                    with_prefix(ip, &cidr.to_string())
                }
            };
        }
        let Some(subnet) = subnet else {
            // Aux addresses come before the network exists: nothing to reserve yet.
            let cidr = self.pool_cidr(&req.pool_id).await?;
            let ip = req.preferred.ok_or_else(|| {
                BackendError::Invalid(format!(
                    "pool {cidr} has no Neutron subnet yet: create the Docker network first"
                ))
            })?;
            return with_prefix(ip, &cidr.to_string());
        };
        if let Some(ip) = self.pool_hit(req, &subnet) {
            return ip;
        }
        if let Some(ip) = req.preferred {
            if let Some(mut port) = self.port_by_ip(&subnet.network_id, ip).await? {
                let ours = self.is_ours(&port);
                let bound = port.host_id.as_deref().is_some_and(|h| !h.is_empty());
                let in_use = !port.device_id.is_empty() || bound;
                if req.serial && ours && in_use {
                    // The Swarm manager again for an address it holds, its task's endpoint
                    // bound (after a restart or a leader change): granted, the port untouched.
                    return with_prefix(ip, &subnet.cidr);
                }
                if let Some(pools) = self.pools.as_ref().filter(|_| req.mac.is_none()) {
                    // A pool port being made ready or given back: free in its pool once that
                    // work is done.
                    if ours && port.device_id.is_empty() && port.name == names::POOL_PORT_NAME {
                        pools.settle().await;
                        if let Some(ip) = self.pool_hit(req, &subnet) {
                            return ip;
                        }
                    }
                }
                if in_use {
                    let user = if ours && port.device_id.is_empty() {
                        "handed out by kuryr and not yet released".to_string()
                    } else if ours {
                        format!("endpoint {}", short(&port.device_id))
                    } else if port.device_id.is_empty() {
                        "a port bound to a host".to_string()
                    } else {
                        format!("device {} ({})", port.device_id, port.device_owner)
                    };
                    return Err(BackendError::Conflict(format!(
                        "address {ip} is in use by port {} ({user}): choose another --ip",
                        port.id
                    )));
                }
                if !ours && !port.device_owner.is_empty() {
                    return Err(BackendError::Conflict(format!(
                        "address {ip} belongs to port {} of {}: kuryr adopts only ports without an owner (device_owner empty)",
                        port.id, port.device_owner
                    )));
                }
                if !ours && !port.tags.iter().any(|t| t == PORT_EXISTING) {
                    // Adopt a port made outside kuryr; it is given back in ReleaseAddress.
                    self.client
                        .add_tag("ports", &port.id, PORT_EXISTING)
                        .await
                        .map_err(|e| fail(format!("adopt port {} holding {ip}", port.id), e))?;
                    port.tags.push(PORT_EXISTING.into());
                    port.revision_number += 1;
                }
                self.cache().ports_by_ip.insert(ip, port);
                return with_prefix(ip, &subnet.cidr);
            }
        }
        let mut fixed = json!({"subnet_id": subnet.id});
        if let Some(ip) = req.preferred {
            fixed["ip_address"] = json!(ip.to_string());
        }
        let mut body = json!({
            "network_id": subnet.network_id,
            "name": names::UNBOUND_PORT_NAME,
            "admin_state_up": true,
            "fixed_ips": [fixed],
        });
        if !self.nested() {
            body["device_owner"] = json!(DEVICE_OWNER);
        }
        if let Some(mac) = &req.mac {
            body["mac_address"] = json!(mac);
        }
        let what = || {
            format!(
                "reserve an address in subnet {} ({})",
                subnet.id, subnet.cidr
            )
        };
        let port = match self
            .client
            .create_port(body)
            .await
            .map_err(|e| fail(what(), e))
        {
            Err(BackendError::Exhausted(m)) => {
                // The last addresses may be on pool ports being made or given back.
                if let Some(pools) = &self.pools {
                    pools.settle().await;
                    if let Some(ip) = self.pool_hit(req, &subnet) {
                        return ip;
                    }
                }
                return Err(BackendError::Exhausted(m));
            }
            r => r?,
        };
        let ip = port
            .fixed_ips
            .iter()
            .find(|f| f.subnet_id == subnet.id)
            .and_then(|f| parse_ip(&f.ip_address))
            .ok_or_else(|| {
                BackendError::Invalid(format!(
                    "port {} got no address in subnet {}",
                    port.id, subnet.id
                ))
            })?;
        self.cache().ports_by_ip.insert(ip, port);
        with_prefix(ip, &subnet.cidr)
    }

    pub(super) async fn release_address_now(
        &self,
        pool_id: &str,
        address: IpAddr,
    ) -> Result<(), BackendError> {
        let Some(subnet) = self.pool_subnet(pool_id, Some(address)).await? else {
            return Ok(());
        };
        let cached = self.cache().ports_by_ip.remove(&address);
        let swarm = self.is_swarm_network(&subnet.network_id).await?;
        let port = match cached {
            // A Swarm network's port is bound on whichever node runs the task: read it now.
            Some(p) if !swarm => Some(p),
            _ => self.port_by_ip(&subnet.network_id, address).await?,
        };
        let Some(port) = port else { return Ok(()) };
        if swarm && self.kept_for_its_endpoint(&port) {
            tracing::info!(port = %port.id, %address, endpoint = %short(&port.device_id), "release of a Swarm task's address whose endpoint was not deleted here: the port stays for that endpoint's own release");
            return Ok(());
        }
        let what = format!("release address {address} (port {})", port.id);
        if port.tags.iter().any(|t| t == PORT_EXISTING) {
            // Given back as it was found: unbound, no owner, no kuryr tag. Fixed values, so no
            // read and no If-Match (see delete_endpoint).
            let body = json!({"device_owner": "", "device_id": "", "binding:host_id": ""});
            self.client
                .update_port(&port.id, body, None)
                .await
                .map_err(|e| fail(what.clone(), e))?;
            return self
                .client
                .remove_tag("ports", &port.id, PORT_EXISTING)
                .await
                .map_err(|e| fail(what, e));
        }
        if !self.is_ours(&port) {
            return Ok(());
        }
        let rest = |p: &Port| -> Vec<Value> {
            p.fixed_ips
                .iter()
                .filter(|f| parse_ip(&f.ip_address) != Some(address))
                .map(|f| json!({"subnet_id": f.subnet_id, "ip_address": f.ip_address}))
                .collect()
        };
        if rest(&port).is_empty() {
            self.port_deleted(&port);
            if let Some(pools) = &self.pools {
                if pools.give_back(port.clone()) {
                    return Ok(());
                }
                pools.forget(&port.id);
            }
            // Still a subport: its DeleteEndpoint did not come (a crash, a failed create).
            self.delete_any_port(&port).await.map_err(|e| fail(what, e))
        } else {
            // A dual-stack port keeps its other address until that one is released.
            let fresh = self
                .client
                .port(&port.id)
                .await
                .map_err(|e| fail(what.clone(), e))?;
            let port = self
                .update_port(&fresh, &what, |p| json!({"fixed_ips": rest(p)}))
                .await?;
            let mut c = self.cache();
            for f in &port.fixed_ips {
                if let Some(ip) = parse_ip(&f.ip_address) {
                    c.ports_by_ip.insert(ip, port.clone());
                }
            }
            Ok(())
        }
    }
}
