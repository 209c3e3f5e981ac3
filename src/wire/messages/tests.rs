use super::*;

#[test]
fn requests_parse_from_documented_json() {
    let r: Request = serde_json::from_str(r#"{"op":"get","path":"a/b.txt"}"#).unwrap();
    assert_eq!(
        r,
        Request::Get {
            path: "a/b.txt".into(),
            offset: 0,
            prefix_sha256: None,
            digest: None,
            fresh: false,
        }
    );
    // A client that asks for BLAKE3 names it; one that does not sends
    // what every server before it understood.
    let r: Request = serde_json::from_str(r#"{"op":"get","path":"a","digest":"blake3"}"#).unwrap();
    assert!(matches!(r, Request::Get { digest: Some(d), .. } if d == "blake3"));
    let plain = serde_json::to_string(&Request::Get {
        path: "a".into(),
        offset: 0,
        prefix_sha256: None,
        digest: None,
        fresh: false,
    })
    .unwrap();
    assert!(
        !plain.contains("digest") && !plain.contains("fresh"),
        "{plain}"
    );
    let r: Request = serde_json::from_str(r#"{"op":"put","path":"x","size":5000000000}"#).unwrap();
    assert!(matches!(
        r,
        Request::Put {
            size: 5_000_000_000,
            resume: true,
            force: false,
            ..
        }
    ));
    assert!(serde_json::from_str::<Request>(r#"{"op":"nope"}"#).is_err());
    assert!(serde_json::from_str::<Request>(r#"{"op":"ls","path":"x","evil":1}"#).is_err());
}

#[test]
fn token_never_shows_in_debug() {
    let r: Request = serde_json::from_str(r#"{"op":"auth","token":"hunter2"}"#).unwrap();
    assert!(!format!("{r:?}").contains("hunter2"));
}

#[test]
fn unknown_error_codes_become_internal() {
    let e: ErrorReply =
        serde_json::from_str(r#"{"code":"from_the_future","message":"m"}"#).unwrap();
    assert_eq!(e.code, ErrorCode::Internal);
    assert_eq!(
        serde_json::to_string(&ErrorCode::NotFound).unwrap(),
        "\"not_found\""
    );
}

#[test]
fn a_walk_end_from_an_older_server_names_nothing_left_out() {
    let c: Count = serde_json::from_str(r#"{"count":3}"#).unwrap();
    assert_eq!((c.count, c.skipped.len(), c.skipped_more), (3, 0, 0));
    // And what this server sends when nothing was left out is what an
    // older client expects.
    let j = serde_json::to_string(&Count::walked(3, Vec::new())).unwrap();
    assert_eq!(j, r#"{"count":3}"#);
}

#[test]
fn a_walk_end_names_the_first_left_out_and_counts_the_rest() {
    let skipped = |n: usize, len: usize| -> Vec<Skipped> {
        (0..n)
            .map(|i| Skipped {
                path: format!("{i:0len$}"),
                why: SkipReason::Special,
            })
            .collect()
    };
    let c = Count::walked(7, skipped(250, 3));
    assert_eq!((c.skipped.len(), c.skipped_more), (MAX_SKIPPED, 150));
    assert_eq!(c.skipped[0].path, "000");
    // Long paths: cut by size, well inside a header.
    let c = Count::walked(7, skipped(50, 4000));
    let j = serde_json::to_vec(&c).unwrap();
    assert!(j.len() <= 33 * 1024, "{}", j.len());
    assert!(
        c.skipped.len() >= 7 && c.skipped.len() < 50,
        "{}",
        c.skipped.len()
    );
    assert_eq!(c.skipped.len() as u64 + c.skipped_more, 50);
    // A reason from a newer server is read, not refused.
    let s: Skipped = serde_json::from_str(r#"{"path":"x","why":"quantum"}"#).unwrap();
    assert_eq!(s.why, SkipReason::Other);
}
