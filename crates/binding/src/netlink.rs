//! The few rtnetlink requests the binding makes, on one socket in the host's namespace.
use futures::TryStreamExt;
use rtnetlink::packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkInfo, LinkMessage, MacVlanMode,
};
use rtnetlink::{Handle, LinkMacVlan, LinkMessageBuilder, LinkUnspec, LinkVeth};
use std::collections::HashSet;
use std::io;

use crate::error::netlink_io;

const ENODEV: i32 = 19;

/// One rtnetlink connection; its reader task stops when this is dropped.
pub(crate) struct Netlink {
    handle: Handle,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Netlink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What a name refers to, when something has it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct LinkFacts {
    /// `veth`, `bridge`, ... or empty for a device without a kind (a physical NIC).
    pub kind: String,
    pub name: String,
    pub index: u32,
    pub mac: Option<String>,
    pub alias: Option<String>,
}

fn facts(msg: &LinkMessage) -> LinkFacts {
    let mut f = LinkFacts {
        index: msg.header.index,
        ..LinkFacts::default()
    };
    for a in &msg.attributes {
        match a {
            LinkAttribute::LinkInfo(infos) => {
                if let Some(k) = infos.iter().find_map(|i| match i {
                    LinkInfo::Kind(k) => Some(k.to_string()),
                    _ => None,
                }) {
                    f.kind = k;
                }
            }
            LinkAttribute::IfName(n) => f.name = n.clone(),
            LinkAttribute::Address(m) if m.len() == 6 => {
                f.mac = Some(
                    m.iter()
                        .map(|b| format!("{b:02x}"))
                        .collect::<Vec<_>>()
                        .join(":"),
                )
            }
            LinkAttribute::IfAlias(a) => f.alias = Some(a.clone()),
            _ => {}
        }
    }
    f
}

fn is_not_found(e: &io::Error) -> bool {
    e.raw_os_error() == Some(ENODEV)
}

/// A request about one link: `Ok(false)` when there is no such link.
fn existed(r: Result<(), rtnetlink::Error>) -> io::Result<bool> {
    match r.map_err(netlink_io) {
        Ok(()) => Ok(true),
        Err(e) if is_not_found(&e) => Ok(false),
        Err(e) => Err(e),
    }
}

impl Netlink {
    /// Opens the socket; needs a tokio runtime for the reader task.
    pub fn open() -> io::Result<Netlink> {
        let (conn, handle, _) = rtnetlink::new_connection()?;
        let task = tokio::spawn(conn);
        Ok(Netlink { handle, task })
    }

    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    /// Creates `host`/`peer` in one request: both ends with `mtu`, the peer with `peer_mac`, the
    /// host end up. Fails with `EEXIST` when either name is taken.
    pub async fn create_veth(
        &self,
        host: &str,
        peer: &str,
        mtu: u32,
        peer_mac: [u8; 6],
    ) -> io::Result<()> {
        let peer_msg = LinkUnspec::new_with_name(peer)
            .mtu(mtu)
            .address(peer_mac.to_vec())
            .build();
        let msg = LinkMessageBuilder::<LinkVeth>::new_with_info_kind(InfoKind::Veth)
            .name(host)
            .mtu(mtu)
            .up()
            .set_info_data(InfoData::Veth(InfoVeth::Peer(peer_msg)))
            .build();
        self.handle
            .link()
            .add(msg)
            .execute()
            .await
            .map_err(netlink_io)
    }

    /// The link named `name` in the host namespace, or `None`.
    pub async fn link(&self, name: &str) -> io::Result<Option<LinkFacts>> {
        let mut links = self.handle.link().get().match_name(name).execute();
        match links.try_next().await.map_err(netlink_io) {
            Ok(Some(msg)) => Ok(Some(facts(&msg))),
            Ok(None) => Ok(None),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every link in the host namespace.
    pub async fn links(&self) -> io::Result<Vec<LinkFacts>> {
        let mut links = self.handle.link().get().execute();
        let mut out = Vec::new();
        while let Some(msg) = links.try_next().await.map_err(netlink_io)? {
            out.push(facts(&msg));
        }
        Ok(out)
    }

    /// A macvlan device in bridge mode on the link with index `lower`, with this MAC, MTU and
    /// alias, down (Docker brings it up inside the container). `EEXIST` when the name is taken;
    /// a failure after the device was made leaves it for the caller to delete.
    pub async fn create_macvlan(
        &self,
        name: &str,
        lower: u32,
        mac: [u8; 6],
        mtu: u32,
        alias: &str,
    ) -> io::Result<()> {
        let msg = LinkMacVlan::new(name, lower, MacVlanMode::Bridge)
            .address(mac.to_vec())
            .mtu(mtu)
            .build();
        self.handle
            .link()
            .add(msg)
            .execute()
            .await
            .map_err(netlink_io)?;
        // The kernel ignores an alias in the request that creates a link: set it after.
        match self.set_alias(name, alias).await? {
            true => Ok(()),
            false => Err(io::Error::from_raw_os_error(ENODEV)),
        }
    }

    /// Sets the alias of the link named `name`; `Ok(false)` when there is none.
    pub async fn set_alias(&self, name: &str, alias: &str) -> io::Result<bool> {
        let set = LinkUnspec::new_with_name(name).alias(alias).build();
        existed(self.handle.link().set(set).execute().await)
    }

    /// Deletes the link named `name`; `Ok(false)` when there is none. Deleting one end of a
    /// veth pair deletes the other, in whatever namespace it is.
    pub async fn delete(&self, name: &str) -> io::Result<bool> {
        let msg = LinkUnspec::new_with_name(name).build();
        existed(self.handle.link().del_with_message(msg).execute().await)
    }

    /// Deletes the link with index `index` (not a later link that took its name);
    /// `Ok(false)` when there is none.
    pub async fn delete_index(&self, index: u32) -> io::Result<bool> {
        existed(self.handle.link().del(index).execute().await)
    }

    /// The names of every link in the host namespace.
    pub async fn names(&self) -> io::Result<HashSet<String>> {
        Ok(self.links().await?.into_iter().map(|l| l.name).collect())
    }
}
