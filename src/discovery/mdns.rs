//! Discovery by the desktops' own means: mDNS and DNS-SD (RFC 6762,
//! 6763), through the `mdns-sd` crate. A server announces `_ferry._tcp`,
//! `_http._tcp` (or `_https._tcp`) and `_webdav._tcp` (or `_webdavs._tcp`)
//! with `path=/`, so Finder's sidebar, GNOME Files' "Other Locations",
//! Windows and `avahi-browse` list it; `ferry discover` browses
//! `_ferry._tcp` beside its own probe.
//!
//! Nothing is announced for a server that listens on loopback only: the
//! network would learn of a service it cannot reach.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use mdns_sd::{IfKind, ServiceDaemon, ServiceEvent, ServiceInfo};

use super::wire::Announcement;

/// The ferry service type.
pub const FERRY: &str = "_ferry._tcp.local.";

/// What a server announces of itself.
#[derive(Debug, Clone)]
pub struct Offer {
    /// The ferry announcement (name, instance, features, ports).
    pub me: Announcement,
    /// Whether HTTP on the port is HTTPS (then `_https` and `_webdavs`).
    pub tls: bool,
    /// The addresses to announce; empty for every interface's own.
    pub addrs: Vec<IpAddr>,
}

/// The announcements of a running server, withdrawn when dropped.
pub struct Announcer {
    daemon: ServiceDaemon,
    names: Vec<String>,
}

impl std::fmt::Debug for Announcer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Announcer")
            .field("names", &self.names)
            .finish()
    }
}

/// A DNS label made of `name`: what mDNS host names may hold.
fn host_label(name: &str) -> String {
    let label: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .take(63)
        .collect();
    let label = label.trim_matches('-').to_string();
    if label.is_empty() {
        "ferry".into()
    } else {
        label
    }
}

impl Announcer {
    /// Starts announcing `offer`.
    pub fn start(offer: &Offer) -> Result<Announcer, mdns_sd::Error> {
        let daemon = ServiceDaemon::new()?;
        // Loopback is not where desktops look.
        daemon.disable_interface(vec![IfKind::LoopbackV4, IfKind::LoopbackV6])?;
        let me = &offer.me;
        let host = format!("{}.local.", host_label(&crate::config::host_name()));
        let (http, dav) = if offer.tls {
            ("_https._tcp.local.", "_webdavs._tcp.local.")
        } else {
            ("_http._tcp.local.", "_webdav._tcp.local.")
        };
        let features = me.features.join(",");
        let mut ferry_txt: Vec<(&str, &str)> = vec![
            ("id", &me.instance),
            ("v", &me.software),
            ("features", &features),
            ("auth", if me.auth_required { "1" } else { "0" }),
        ];
        if let Some(c) = &me.cluster {
            ferry_txt.push(("cluster", c));
        }
        let path = vec![("path", "/")];
        let mut services = vec![(FERRY, ferry_txt)];
        if me.features.iter().any(|f| f == "web") {
            services.push((http, path.clone()));
            services.push((dav, path));
        }
        let mut names = Vec::new();
        for (ty, txt) in services {
            let info =
                ServiceInfo::new(ty, &me.name, &host, &offer.addrs[..], me.tcp_port, &txt[..])?;
            let info = if offer.addrs.is_empty() {
                info.enable_addr_auto()
            } else {
                info
            };
            names.push(info.get_fullname().to_string());
            daemon.register(info)?;
        }
        Ok(Announcer { daemon, names })
    }
}

impl Drop for Announcer {
    fn drop(&mut self) {
        // Goodbyes, so that desktops drop the server at once.
        for name in &self.names {
            if let Ok(done) = self.daemon.unregister(name) {
                let _ = done.recv_timeout(Duration::from_millis(500));
            }
        }
        let _ = self.daemon.shutdown();
    }
}

/// A ferry server an mDNS browse found.
#[derive(Debug, Clone)]
pub struct Heard {
    /// Its instance id (the one its probe answers carry).
    pub instance: String,
    /// Its announcement, as far as DNS-SD carries one.
    pub me: Announcement,
    /// The addresses it announced.
    pub addresses: Vec<IpAddr>,
}

/// Browses `_ferry._tcp` for `wait` (blocking: run it on a blocking
/// thread).
pub fn browse(wait: Duration) -> Result<Vec<Heard>, mdns_sd::Error> {
    let daemon = ServiceDaemon::new()?;
    let events = daemon.browse(FERRY)?;
    let deadline = Instant::now() + wait;
    let mut heard: HashMap<String, Heard> = HashMap::new();
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        let Ok(event) = events.recv_timeout(left) else {
            break;
        };
        let ServiceEvent::ServiceResolved(s) = event else {
            continue;
        };
        let txt = |k: &str| s.get_property_val_str(k).unwrap_or_default().to_string();
        let instance = txt("id");
        if instance.is_empty() {
            continue;
        }
        let name = s
            .fullname
            .strip_suffix(&format!(".{FERRY}"))
            .unwrap_or(&s.fullname)
            .replace("\\.", ".");
        let mut addresses: Vec<IpAddr> = s.get_addresses().iter().map(|a| a.to_ip_addr()).collect();
        addresses.sort();
        let features = txt("features");
        let entry = heard.entry(instance.clone()).or_insert_with(|| Heard {
            instance: instance.clone(),
            me: Announcement {
                name,
                instance,
                software: txt("v"),
                tcp_port: s.get_port(),
                udp_port: s.get_port(),
                features: features
                    .split(',')
                    .filter(|f| !f.is_empty())
                    .map(str::to_string)
                    .collect(),
                auth_required: txt("auth") == "1",
                nonce: "mdns".into(),
                announce_every: None,
                cluster: Some(txt("cluster")).filter(|c| !c.is_empty()),
            },
            addresses: Vec::new(),
        });
        for a in addresses {
            if !entry.addresses.contains(&a) {
                entry.addresses.push(a);
            }
        }
    }
    let _ = daemon.shutdown();
    Ok(heard.into_values().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_labels_are_dns_labels() {
        assert_eq!(host_label("nas"), "nas");
        assert_eq!(host_label("my box.lan"), "my-box-lan");
        assert_eq!(host_label("..."), "ferry");
        assert_eq!(host_label(&"x".repeat(100)).len(), 63);
    }
}
