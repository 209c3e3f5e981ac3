//! Values people type for server options, as flags and as file keys
//! alike: listen addresses (a port alone is enough) and sizes with units.

use std::fmt;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::str::FromStr;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

/// One place to listen: an address and port, or a port alone, which means
/// every address of both families, as the default does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listen {
    /// `ADDR:PORT` (`[::1]:7070` for IPv6).
    Addr(SocketAddr),
    /// `PORT` or `:PORT`.
    Port(u16),
}

impl Listen {
    /// The sockets this stands for.
    pub fn addrs(self) -> Vec<SocketAddr> {
        match self {
            Listen::Addr(a) => vec![a],
            Listen::Port(p) => vec![
                SocketAddr::from(([0, 0, 0, 0], p)),
                SocketAddr::from(([0u16; 8], p)),
            ],
        }
    }
}

impl FromStr for Listen {
    type Err = String;

    fn from_str(s: &str) -> Result<Listen, String> {
        let t = s.trim();
        let digits = t.strip_prefix(':').unwrap_or(t);
        if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
            return match digits.parse::<u16>() {
                Ok(0) | Err(_) => Err(format!("port {digits} is out of range (1 to 65535)")),
                Ok(p) => Ok(Listen::Port(p)),
            };
        }
        t.parse::<SocketAddr>().map(Listen::Addr).map_err(|_| {
            format!(
                "`{t}` is not ADDR:PORT, :PORT or PORT (IPv6 in brackets: [::1]:7070; ports 1 to 65535)"
            )
        })
    }
}

impl<'de> Deserialize<'de> for Listen {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Listen, D::Error> {
        d.deserialize_any(Typed::<Listen>(
            "\"ADDR:PORT\", \":PORT\" or a port",
            PhantomData,
        ))
    }
}

/// A value a file gives as text (`"8GiB"`, `":7171"`) or as a bare
/// number (`1024`, `7171`), read as its flag would read it.
struct Typed<T>(&'static str, PhantomData<T>);

impl<T: FromStr<Err = String>> Visitor<'_> for Typed<T> {
    type Value = T;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.0)
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<T, E> {
        s.parse().map_err(E::custom)
    }
    fn visit_i64<E: de::Error>(self, n: i64) -> Result<T, E> {
        self.visit_str(&n.to_string())
    }
}

/// A number of bytes: digits, optionally with a unit (`500M`, `1G`,
/// `8GiB`, `64k`; case does not matter, the `B` may be left out). Units
/// are powers of 1024 whichever way they are written, as the help prints
/// them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size(pub u64);

impl FromStr for Size {
    type Err = String;

    fn from_str(s: &str) -> Result<Size, String> {
        parse_size::Config::new()
            .with_binary()
            .parse_size(s.trim())
            .map(Size)
            .map_err(|e| format!("`{s}` is not a size ({e}); write e.g. 500M, 1G or 8GiB"))
    }
}

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Size, D::Error> {
        let expecting = "a number of bytes, or a size such as \"500M\" or \"8GiB\"";
        d.deserialize_any(Typed::<Size>(expecting, PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_with_and_without_units() {
        let size = |s: &str| s.parse::<Size>().map(|v| v.0);
        assert_eq!(size("1234"), Ok(1234));
        assert_eq!(size("500M"), Ok(500 << 20));
        assert_eq!(size("1G"), Ok(1 << 30));
        assert_eq!(size("1gb"), Ok(1 << 30));
        assert_eq!(size("8GiB"), Ok(8 << 30));
        assert_eq!(size("64k"), Ok(64 << 10));
        for bad in ["", "G", "-1", "1X", "9999999999999999999999"] {
            assert!(size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_port_alone_means_both_families() {
        let l = |s: &str| s.parse::<Listen>();
        assert_eq!(l("7171"), Ok(Listen::Port(7171)));
        assert_eq!(l(":7171"), Ok(Listen::Port(7171)));
        assert_eq!(l("7171").unwrap().addrs().len(), 2);
        assert!(l("7171").unwrap().addrs().iter().any(|a| a.is_ipv6()));
        assert_eq!(
            l("127.0.0.1:9"),
            Ok(Listen::Addr("127.0.0.1:9".parse().unwrap()))
        );
        assert_eq!(l("[::1]:9").unwrap().addrs().len(), 1);
        for bad in ["70000", ":0", "0", "127.0.0.1:70000", "::1:9", "host", ""] {
            let e = l(bad).unwrap_err();
            assert!(e.contains("port") || e.contains("PORT"), "{bad}: {e}");
        }
    }
}
