//! [`KnownNames`]: the names this server answers to over HTTP, so that a
//! page on another site whose name has been pointed at this server (DNS
//! rebinding) gets nothing: its requests carry that other name in `Host`.
//!
//! Answered: any IP literal, `localhost` (and `*.localhost`, which browsers
//! keep on the machine), the host name and `NAME.local`, the names the TLS
//! certificate is valid for, and names added with `--allow-host`.

use std::collections::HashSet;
use std::net::IpAddr;

/// The names the server really has.
#[derive(Debug, Default)]
pub struct KnownNames {
    names: HashSet<String>,
}

impl KnownNames {
    /// The host name, its `.local` form, `localhost`, and `extra`.
    pub fn new(host_name: &str, extra: &[String]) -> KnownNames {
        let mut names = HashSet::new();
        for n in [host_name.to_string(), format!("{host_name}.local")]
            .into_iter()
            .chain(extra.iter().cloned())
        {
            names.insert(normalise(&n));
        }
        names.insert("localhost".into());
        KnownNames { names }
    }

    /// Whether a `Host` header value (`name[:port]`, `[v6]:port`) names
    /// this server; `cert` says whether the TLS certificate is valid for a
    /// name that is not in the list.
    pub fn allows(&self, host: &str, cert: impl Fn(&str) -> bool) -> bool {
        let Some(name) = host_part(host) else {
            return false;
        };
        if name.starts_with('[') {
            return name
                .strip_prefix('[')
                .and_then(|n| n.strip_suffix(']'))
                .is_some_and(|n| n.parse::<std::net::Ipv6Addr>().is_ok());
        }
        if name.parse::<IpAddr>().is_ok() {
            return true;
        }
        let name = normalise(name);
        name == "localhost"
            || name.ends_with(".localhost")
            || self.names.contains(&name)
            || cert(&name)
    }
}

/// Lower case, without a trailing dot.
fn normalise(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// The name in `name[:port]` or `[v6]:port`; `None` when it is malformed.
fn host_part(host: &str) -> Option<&str> {
    if host.is_empty() || host.len() > 255 || host.bytes().any(|b| b <= b' ' || b >= 0x7f) {
        return None;
    }
    if host.starts_with('[') {
        let end = host.find(']')?;
        let rest = &host[end + 1..];
        if !(rest.is_empty() || port(rest.strip_prefix(':')?)) {
            return None;
        }
        return Some(&host[..=end]);
    }
    match host.rsplit_once(':') {
        Some((name, p)) if port(p) && !name.contains(':') => Some(name),
        Some(_) => None,
        None => Some(host),
    }
}

fn port(p: &str) -> bool {
    !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_servers_own_names_and_literals_pass_others_do_not() {
        let k = KnownNames::new("nas", &["files.example.org".into()]);
        let none = |_: &str| false;
        for ok in [
            "127.0.0.1",
            "127.0.0.1:7070",
            "192.168.1.20:7070",
            "[::1]:7070",
            "[fe80::1]",
            "localhost:7070",
            "LOCALHOST",
            "app.localhost",
            "nas",
            "NAS.local:7070",
            "nas.local.",
            "files.example.org:443",
        ] {
            assert!(k.allows(ok, none), "{ok} should pass");
        }
        for bad in [
            "attacker.example",
            "attacker.example:7070",
            "nas.attacker.example",
            "localhost.attacker.example",
            "",
            "nas:x",
            "[::1",
            "[zz]:80",
            "a b",
            "nas:7070:1",
        ] {
            assert!(!k.allows(bad, none), "{bad} should be refused");
        }
        assert!(k.allows("from-cert.example", |n| n == "from-cert.example"));
    }
}
