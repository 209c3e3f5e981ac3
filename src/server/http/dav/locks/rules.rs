//! Which locks bear on a path: dav-server's lock table's rules
//! (`MemLs`), over a list.

use dav_server::davpath::DavPath;
use dav_server::ls::DavLock;

use super::{MAX_LOCKS, MAX_PATH, MAX_PER_CLIENT, MAX_PER_PATH};

/// A path's non-empty segments.
fn segs(path: &DavPath) -> Vec<&[u8]> {
    path.as_bytes()
        .split(|&c| c == b'/')
        .filter(|s| !s.is_empty())
        .collect()
}

/// Whether `inner` is `outer` or below it.
pub(super) fn within(inner: &DavPath, outer: &DavPath) -> bool {
    segs(inner).starts_with(&segs(outer))
}

/// The locks on `path` and above it, from the root down (what
/// `lockdiscovery` shows).
pub(super) fn above<'a>(table: &'a [DavLock], path: &DavPath) -> Vec<&'a DavLock> {
    let mut on: Vec<&DavLock> = table.iter().filter(|l| within(path, &l.path)).collect();
    on.sort_by_key(|l| segs(&l.path).len());
    on
}

/// Whether `tokens` (from `principal`) name `lock`.
fn holds(lock: &DavLock, principal: Option<&str>, any_principal: bool, tokens: &[String]) -> bool {
    tokens.contains(&lock.token) && (any_principal || principal == lock.principal.as_deref())
}

/// The first lock on `path` or a deep one above it that the tokens do not
/// name and that is not shared where sharing is fine.
pub(super) fn check_up(
    table: &[DavLock],
    path: &DavPath,
    principal: Option<&str>,
    any_principal: bool,
    tokens: &[String],
    shared_ok: bool,
) -> Result<(), DavLock> {
    let depth = segs(path).len();
    let mut held = false;
    let mut first_shared: Option<&DavLock> = None;
    for l in above(table, path) {
        if segs(&l.path).len() < depth && !l.deep {
            continue;
        }
        if holds(l, principal, any_principal, tokens) {
            held = true;
        } else if !l.shared {
            return Err(l.clone());
        } else if !shared_ok {
            first_shared.get_or_insert(l);
        }
    }
    match first_shared {
        Some(l) if !held => Err(l.clone()),
        _ => Ok(()),
    }
}

/// The first lock on `path` or below it that the tokens do not name.
pub(super) fn check_down(
    table: &[DavLock],
    path: &DavPath,
    principal: Option<&str>,
    any_principal: bool,
    tokens: &[String],
    shared_ok: bool,
) -> Result<(), DavLock> {
    match table.iter().find(|l| {
        within(&l.path, path)
            && (!l.shared || !shared_ok)
            && !holds(l, principal, any_principal, tokens)
    }) {
        Some(l) => Err(l.clone()),
        None => Ok(()),
    }
}

/// Whether a lock on `path` by `by` finds no room: in the table, on the
/// path, or for that client (so one cannot fill the table), or its path
/// is longer than a lock keeps.
pub(super) fn full(table: &[DavLock], path: &DavPath, by: Option<&str>) -> bool {
    let client = by.map(client_of);
    path.as_bytes().len() > MAX_PATH
        || table.len() >= MAX_LOCKS
        || table.iter().filter(|l| *l.path == *path).count() >= MAX_PER_PATH
        || table
            .iter()
            .filter(|l| l.principal.as_deref().map(client_of) == client)
            .count()
            >= MAX_PER_CLIENT
}

/// The client a lock's principal (an address) counts against: the
/// address, or for IPv6 its /64, which one host is commonly given whole.
fn client_of(principal: &str) -> String {
    match principal.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V6(v6)) if v6.to_ipv4_mapped().is_none() => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
        Ok(std::net::IpAddr::V6(v6)) => v6.to_canonical().to_string(),
        _ => principal.to_owned(),
    }
}
