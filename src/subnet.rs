//! The subnet calculator behind `ferry subnet`: network, broadcast, mask and
//! host range of an address with a prefix or a dotted mask, and whether
//! other addresses share its LAN (the classic "address AND mask" question).
//! Pure; IPv4 and IPv6.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::Serialize;

/// Why the input is not a network.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubnetError {
    /// Not an address.
    #[error("{0:?} is not an IPv4 or IPv6 address")]
    Address(String),
    /// Not a prefix length for the family.
    #[error("{0:?} is not a prefix length (0–32 for IPv4, 0–128 for IPv6)")]
    Prefix(String),
    /// A mask whose ones are not contiguous, or not a mask at all.
    #[error("{0:?} is not a valid netmask: its one bits must be contiguous from the left")]
    Mask(String),
    /// Mixed IPv4 and IPv6.
    #[error("{0} and {1} are not of the same family")]
    Family(String, String),
}

/// An address and its network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subnet {
    /// The address given.
    pub address: IpAddr,
    /// Prefix length.
    pub prefix: u8,
}

/// Everything `ferry subnet` reports.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Report {
    /// The address given.
    pub address: String,
    /// `network/prefix`.
    pub cidr: String,
    /// Network address.
    pub network: String,
    /// Prefix length.
    pub prefix: u8,
    /// Netmask (dotted for IPv4).
    pub netmask: String,
    /// Inverse of the mask.
    pub wildcard: String,
    /// Broadcast address (IPv4 only).
    pub broadcast: Option<String>,
    /// First usable host.
    pub first_host: String,
    /// Last usable host.
    pub last_host: String,
    /// Addresses in the network, as a decimal string (IPv6 counts exceed
    /// what JSON numbers hold).
    pub addresses: String,
    /// Usable hosts, as a decimal string.
    pub hosts: String,
    /// For each other address: whether it is on the same network.
    pub same_network: Vec<(String, bool)>,
}

impl Subnet {
    /// Parses `ADDR/PREFIX`, `ADDR/MASK`, or `ADDR` with `mask` given apart
    /// (`ADDR` alone is a host route: /32 or /128).
    pub fn parse(spec: &str, mask: Option<&str>) -> Result<Subnet, SubnetError> {
        let (addr_text, suffix) = match spec.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (spec, None),
        };
        let address: IpAddr = addr_text
            .trim()
            .parse()
            .map_err(|_| SubnetError::Address(addr_text.to_string()))?;
        let bits = if address.is_ipv4() { 32 } else { 128 };
        let prefix = match (suffix, mask) {
            (Some(_), Some(_)) => {
                return Err(SubnetError::Mask(
                    "a prefix and a mask were both given".into(),
                ));
            }
            (Some(p), None) | (None, Some(p)) => parse_prefix_or_mask(p, address, bits)?,
            (None, None) => bits,
        };
        Ok(Subnet { address, prefix })
    }

    fn bits(&self) -> u32 {
        if self.address.is_ipv4() { 32 } else { 128 }
    }

    fn mask(&self) -> u128 {
        let bits = self.bits();
        if self.prefix == 0 {
            0
        } else {
            (u128::MAX << (bits - u32::from(self.prefix))) & width_mask(bits)
        }
    }

    fn value(&self) -> u128 {
        to_u128(self.address)
    }

    /// Whether `other` is on this network.
    pub fn contains(&self, other: IpAddr) -> Result<bool, SubnetError> {
        if other.is_ipv4() != self.address.is_ipv4() {
            return Err(SubnetError::Family(
                self.address.to_string(),
                other.to_string(),
            ));
        }
        Ok(to_u128(other) & self.mask() == self.value() & self.mask())
    }

    /// The full report, with `others` checked for membership.
    pub fn report(&self, others: &[IpAddr]) -> Result<Report, SubnetError> {
        let bits = self.bits();
        let mask = self.mask();
        let network = self.value() & mask;
        let last = network | (!mask & width_mask(bits));
        let host_bits = bits - u32::from(self.prefix);
        let v4 = self.address.is_ipv4();
        // IPv4 keeps the network and broadcast addresses out of the host
        // range, except on /31 (RFC 3021, point to point) and /32.
        let (first_host, last_host, hosts) = if v4 && host_bits >= 2 {
            (network + 1, last - 1, count(host_bits).map(|c| c - 2))
        } else {
            (network, last, count(host_bits))
        };
        let show = |v: u128| from_u128(v, v4).to_string();
        let mut same = Vec::new();
        for o in others {
            same.push((o.to_string(), self.contains(*o)?));
        }
        Ok(Report {
            address: self.address.to_string(),
            cidr: format!("{}/{}", show(network), self.prefix),
            network: show(network),
            prefix: self.prefix,
            netmask: show(mask),
            wildcard: show(!mask & width_mask(bits)),
            broadcast: v4.then(|| show(last)),
            first_host: show(first_host),
            last_host: show(last_host),
            addresses: count(host_bits).map_or_else(
                || "340282366920938463463374607431768211456".into(),
                |c| c.to_string(),
            ),
            hosts: hosts.map_or_else(
                || "340282366920938463463374607431768211456".into(),
                |c| c.to_string(),
            ),
            same_network: same,
        })
    }
}

/// 2^bits, or `None` for 2^128 (which u128 cannot hold).
fn count(bits: u32) -> Option<u128> {
    1u128.checked_shl(bits)
}

fn width_mask(bits: u32) -> u128 {
    if bits == 128 {
        u128::MAX
    } else {
        (1u128 << bits) - 1
    }
}

fn to_u128(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(v) => u128::from(u32::from(v)),
        IpAddr::V6(v) => u128::from(v),
    }
}

fn from_u128(v: u128, v4: bool) -> IpAddr {
    if v4 {
        IpAddr::V4(Ipv4Addr::from(v as u32))
    } else {
        IpAddr::V6(Ipv6Addr::from(v))
    }
}

fn parse_prefix_or_mask(text: &str, address: IpAddr, bits: u8) -> Result<u8, SubnetError> {
    let t = text.trim();
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        return match t.parse::<u8>() {
            Ok(p) if p <= bits => Ok(p),
            _ => Err(SubnetError::Prefix(t.to_string())),
        };
    }
    let mask: IpAddr = t.parse().map_err(|_| SubnetError::Mask(t.to_string()))?;
    if mask.is_ipv4() != address.is_ipv4() {
        return Err(SubnetError::Family(address.to_string(), mask.to_string()));
    }
    let v = to_u128(mask);
    let ones = v.count_ones();
    let expect = if ones == 0 {
        0
    } else {
        (u128::MAX << (u32::from(bits) - ones)) & width_mask(u32::from(bits))
    };
    if v != expect {
        return Err(SubnetError::Mask(t.to_string()));
    }
    Ok(ones as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(spec: &str, mask: Option<&str>) -> Report {
        Subnet::parse(spec, mask).unwrap().report(&[]).unwrap()
    }

    #[test]
    fn hand_worked_ipv4() {
        let x = r("192.168.1.10/24", None);
        assert_eq!(
            (
                x.network.as_str(),
                x.netmask.as_str(),
                x.broadcast.as_deref(),
                x.first_host.as_str(),
                x.last_host.as_str(),
                x.hosts.as_str()
            ),
            (
                "192.168.1.0",
                "255.255.255.0",
                Some("192.168.1.255"),
                "192.168.1.1",
                "192.168.1.254",
                "254"
            )
        );
        assert_eq!(r("192.168.1.10", Some("255.255.255.0")), x);
        assert_eq!(r("192.168.1.10/255.255.255.0", None), x);
        let x = r("10.1.2.3/0", None);
        assert_eq!(
            (
                x.network.as_str(),
                x.broadcast.as_deref(),
                x.addresses.as_str()
            ),
            ("0.0.0.0", Some("255.255.255.255"), "4294967296")
        );
        let x = r("10.0.0.7/31", None);
        assert_eq!(
            (
                x.first_host.as_str(),
                x.last_host.as_str(),
                x.hosts.as_str()
            ),
            ("10.0.0.6", "10.0.0.7", "2")
        );
        let x = r("10.0.0.7/32", None);
        assert_eq!(
            (
                x.first_host.as_str(),
                x.last_host.as_str(),
                x.hosts.as_str()
            ),
            ("10.0.0.7", "10.0.0.7", "1")
        );
        let x = r("172.16.5.4/20", None);
        assert_eq!(
            (x.cidr.as_str(), x.wildcard.as_str(), x.last_host.as_str()),
            ("172.16.0.0/20", "0.0.15.255", "172.16.15.254")
        );
    }

    #[test]
    fn hand_worked_ipv6() {
        let x = r("2001:db8::1/64", None);
        assert_eq!(
            (x.network.as_str(), x.broadcast, x.addresses.as_str()),
            ("2001:db8::", None, "18446744073709551616")
        );
        let x = r("::1/128", None);
        assert_eq!((x.first_host.as_str(), x.hosts.as_str()), ("::1", "1"));
        let x = r("fe80::1/127", None);
        assert_eq!(
            (
                x.first_host.as_str(),
                x.last_host.as_str(),
                x.hosts.as_str()
            ),
            ("fe80::", "fe80::1", "2")
        );
        let x = r("::/0", None);
        assert_eq!(x.addresses, "340282366920938463463374607431768211456");
    }

    #[test]
    fn same_lan() {
        let s = Subnet::parse("192.168.1.10/24", None).unwrap();
        assert!(s.contains("192.168.1.77".parse().unwrap()).unwrap());
        assert!(!s.contains("192.168.2.77".parse().unwrap()).unwrap());
        assert!(s.contains("::1".parse().unwrap()).is_err());
    }

    #[test]
    fn bad_input_is_refused() {
        for (spec, mask) in [
            ("192.168.1.10", Some("255.0.255.0")),
            ("192.168.1.10", Some("255.255.255.1")),
            ("192.168.1.10/33", None),
            ("2001:db8::/129", None),
            ("300.1.1.1/8", None),
            ("banana/8", None),
            ("10.0.0.1/-1", None),
            ("10.0.0.1/", None),
            ("10.0.0.1/24", Some("255.0.0.0")),
            ("10.0.0.1", Some("ffff::")),
        ] {
            assert!(Subnet::parse(spec, mask).is_err(), "{spec} {mask:?}");
        }
    }
}
