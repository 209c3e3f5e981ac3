//! The lock table as one record of the storage's shared records (JSON).

use std::time::{Duration, UNIX_EPOCH};

use dav_server::davpath::DavPath;
use dav_server::ls::DavLock;
use serde::{Deserialize, Serialize};
use xmltree::Element;

/// Longest owner (its XML) a lock keeps; a longer one is not kept.
const MAX_OWNER: usize = 1024;

/// A lock as the shared record keeps it.
#[derive(Serialize, Deserialize)]
struct Stored {
    token: String,
    /// The resource's URL path (percent-encoded).
    path: String,
    principal: Option<String>,
    /// The owner element, as XML.
    owner: Option<String>,
    /// When it runs out, in milliseconds since 1970.
    until_ms: u64,
    timeout_s: u64,
    shared: bool,
    deep: bool,
}

pub(super) fn encode(table: &[DavLock]) -> Vec<u8> {
    let stored: Vec<Stored> = table
        .iter()
        .map(|l| Stored {
            token: l.token.clone(),
            path: l.path.as_url_string(),
            principal: l.principal.clone(),
            owner: l.owner.as_deref().and_then(owner_xml),
            until_ms: l.timeout_at.map_or(0, |at| {
                at.duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as u64)
            }),
            timeout_s: l.timeout.map_or(0, |d| d.as_secs()),
            shared: l.shared,
            deep: l.deep,
        })
        .collect();
    serde_json::to_vec(&stored).unwrap_or_else(|_| b"[]".to_vec())
}

/// The table in a record; a lock that does not parse is not one (the
/// record is ferry's own, below the storage's reserved folder). `None`
/// when the record is no list at all.
pub(super) fn decode(bytes: &[u8]) -> Option<Vec<DavLock>> {
    let stored: Vec<Stored> = serde_json::from_slice(bytes).ok()?;
    let locks = stored
        .into_iter()
        .filter_map(|s| {
            Some(DavLock {
                path: Box::new(DavPath::new(&s.path).ok()?),
                owner: s
                    .owner
                    .and_then(|x| Element::parse(x.as_bytes()).ok())
                    .map(Box::new),
                timeout_at: Some(UNIX_EPOCH + Duration::from_millis(s.until_ms)),
                timeout: Some(Duration::from_secs(s.timeout_s)),
                token: s.token,
                principal: s.principal,
                shared: s.shared,
                deep: s.deep,
            })
        })
        .collect();
    Some(locks)
}

/// An owner element as XML, when it is short enough to keep.
fn owner_xml(owner: &Element) -> Option<String> {
    let mut out = Vec::new();
    let config = xmltree::EmitterConfig::new().write_document_declaration(false);
    owner.write_with_config(&mut out, config).ok()?;
    (out.len() <= MAX_OWNER).then(|| String::from_utf8(out).ok())?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(p: &str) -> DavPath {
        DavPath::new(p).unwrap()
    }

    #[test]
    fn the_record_keeps_every_field_and_drops_what_does_not_parse() {
        let owner = Element::parse(&b"<D:owner xmlns:D=\"DAV:\"><D:href>me</D:href></D:owner>"[..])
            .unwrap();
        let lock = DavLock {
            token: "urn:uuid:1".into(),
            path: Box::new(at("/a%20b/%C3%A9")),
            principal: Some("127.0.0.1".into()),
            owner: Some(Box::new(owner)),
            timeout_at: Some(UNIX_EPOCH + Duration::from_millis(4_000_000_000_123)),
            timeout: Some(Duration::from_secs(60)),
            shared: true,
            deep: true,
        };
        let back = decode(&encode(std::slice::from_ref(&lock))).unwrap();
        assert_eq!(back.len(), 1);
        let b = &back[0];
        assert_eq!(
            (b.token.as_str(), b.path.as_bytes()),
            ("urn:uuid:1", "/a b/é".as_bytes())
        );
        assert_eq!(b.timeout_at, lock.timeout_at);
        assert_eq!((b.timeout, b.shared, b.deep), (lock.timeout, true, true));
        assert_eq!(b.principal, lock.principal);
        assert_eq!(b.owner.as_ref().unwrap().children.len(), 1);
        // Not JSON, or a path that is none: no locks, never a panic.
        assert!(decode(b"{not json").is_none());
        let one = |path: &str| {
            format!(
                r#"[{{"token":"t","path":"{path}","principal":null,"owner":"<x","until_ms":0,"timeout_s":0,"shared":false,"deep":false}}]"#
            )
        };
        assert!(decode(one("no-slash").as_bytes()).unwrap().is_empty());
        assert!(decode(one("/a/../..").as_bytes()).unwrap().is_empty());
        // A path that parses is kept; an owner that does not is dropped.
        let kept = decode(one("/ok").as_bytes()).unwrap();
        assert_eq!(kept.len(), 1);
        assert!(kept[0].owner.is_none());
    }
}
