//! Network namespaces of network containers: moving an endpoint's container end into one and
//! setting it up there (name, addresses, routes, up), as Docker does for the driver.
//!
//! The device is moved by passing the namespace's fd in the netlink request; the setup inside
//! runs on a dedicated OS thread that enters the namespace and is thrown away afterwards, so no
//! runtime thread ever changes namespace.
use anyhow::Context;
use futures::TryStreamExt;
use ipnet::IpNet;
use rtnetlink::{LinkUnspec, RouteMessageBuilder};
use std::fs::File;
use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::path::Path;

/// How one endpoint's interface is set up inside the namespace.
#[derive(Debug, Clone)]
pub struct IfaceSetup {
    /// The veth end as the binding created it (`t_c<id>`), in the host namespace.
    pub from: String,
    /// Its name inside (`eth0`, `eth1`, ...).
    pub name: String,
    pub addresses: Vec<IpNet>,
    /// Default routes through these gateways (only the first endpoint's, like Docker).
    pub gateways: Vec<IpAddr>,
}

pub fn open(path: &Path) -> anyhow::Result<File> {
    File::open(path).with_context(|| format!("open network namespace {}", path.display()))
}

async fn index(handle: &rtnetlink::Handle, name: &str) -> anyhow::Result<u32> {
    let mut links = handle.link().get().match_name(name.to_string()).execute();
    match links.try_next().await {
        Ok(Some(l)) => Ok(l.header.index),
        Ok(None) => anyhow::bail!("interface {name} does not exist"),
        Err(e) => Err(anyhow::Error::new(e).context(format!("look up interface {name}"))),
    }
}

/// Moves `ifname` from this (the host's) namespace into the namespace `ns`.
pub async fn move_into(ifname: &str, ns: &File) -> anyhow::Result<()> {
    let (conn, handle, _) = rtnetlink::new_connection().context("open a netlink socket")?;
    let task = tokio::spawn(conn);
    let res = async {
        let idx = index(&handle, ifname).await?;
        handle
            .link()
            .set(
                LinkUnspec::new_with_index(idx)
                    .setns_by_fd(ns.as_raw_fd())
                    .build(),
            )
            .execute()
            .await
            .with_context(|| format!("move interface {ifname} into the container's namespace"))
    }
    .await;
    task.abort();
    res
}

/// Runs the setup inside `ns` on a throwaway OS thread.
pub fn configure(ns: &File, setup: Vec<IfaceSetup>) -> anyhow::Result<()> {
    let fd = ns.try_clone().context("duplicate the namespace fd")?;
    std::thread::spawn(move || -> anyhow::Result<()> {
        // SAFETY: setns on this thread only, which ends right after.
        if unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return Err(std::io::Error::last_os_error()).context("enter the container's namespace");
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("start a runtime inside the namespace")?;
        rt.block_on(configure_here(setup))
    })
    .join()
    .map_err(|_| anyhow::anyhow!("the namespace setup thread panicked"))?
}

async fn configure_here(setup: Vec<IfaceSetup>) -> anyhow::Result<()> {
    let (conn, handle, _) = rtnetlink::new_connection().context("open a netlink socket")?;
    tokio::spawn(conn);
    let lo = index(&handle, "lo").await?;
    handle
        .link()
        .set(LinkUnspec::new_with_index(lo).up().build())
        .execute()
        .await
        .context("set lo up")?;
    for s in setup {
        let idx = index(&handle, &s.from).await?;
        handle
            .link()
            .set(LinkUnspec::new_with_index(idx).name(s.name.clone()).build())
            .execute()
            .await
            .with_context(|| format!("rename {} to {}", s.from, s.name))?;
        for a in &s.addresses {
            handle
                .address()
                .add(idx, a.addr(), a.prefix_len())
                .execute()
                .await
                .with_context(|| format!("add address {a} to {}", s.name))?;
        }
        handle
            .link()
            .set(LinkUnspec::new_with_index(idx).up().build())
            .execute()
            .await
            .with_context(|| format!("set {} up", s.name))?;
        for gw in &s.gateways {
            let msg = match gw {
                IpAddr::V4(g) => RouteMessageBuilder::<std::net::Ipv4Addr>::new()
                    .gateway(*g)
                    .output_interface(idx)
                    .build(),
                IpAddr::V6(g) => RouteMessageBuilder::<std::net::Ipv6Addr>::new()
                    .gateway(*g)
                    .output_interface(idx)
                    .build(),
            };
            handle
                .route()
                .add(msg)
                .execute()
                .await
                .with_context(|| format!("add default route via {gw} on {}", s.name))?;
        }
    }
    Ok(())
}
