//! litmus, the WebDAV conformance suite, run against a server; dead
//! properties set and read with curl.

use std::process::Command;

/// Every suite litmus has.
pub const SUITES: [&str; 5] = ["basic", "copymove", "props", "locks", "http"];

/// litmus's whole output against the server at `url`.
pub fn litmus(url: &str) -> String {
    // litmus writes its logs into the folder it runs in.
    let logs = tempfile::tempdir().unwrap();
    let out = Command::new("litmus")
        .arg(url)
        .current_dir(logs.path())
        .output()
        .expect("litmus is installed by scripts/test (Debian's litmus)");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Panics unless every suite ran and passed whole in `out`.
pub fn assert_every_suite_passed(out: &str) {
    for suite in SUITES {
        let line = out
            .lines()
            .find(|l| l.contains(&format!("summary for `{suite}'")))
            .unwrap_or_else(|| panic!("suite {suite} did not run:\n{out}"));
        assert!(
            line.contains(" 0 failed") && line.contains("100.0%"),
            "{line}\n{out}"
        );
    }
}

/// Sets the property `colour` of `url` to `value`: the status and answer.
pub fn set_colour(url: &str, value: &str) -> (u16, String) {
    let body = format!(
        r#"<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:" xmlns:x="urn:x"><D:set><D:prop><x:colour>{value}</x:colour></D:prop></D:set></D:propertyupdate>"#
    );
    let (code, _, out) = super::s3::curl_headers(&["-X", "PROPPATCH", "--data-binary", &body, url]);
    (code, String::from_utf8_lossy(&out).into_owned())
}

/// The property `colour` of `url` (and of what is in it, to `depth`).
pub fn colours(url: &str, depth: &str) -> String {
    let (code, _, out) = super::s3::curl_headers(&[
        "-X",
        "PROPFIND",
        "-H",
        &format!("Depth: {depth}"),
        "--data-binary",
        r#"<?xml version="1.0"?><D:propfind xmlns:D="DAV:" xmlns:x="urn:x"><D:prop><x:colour/></D:prop></D:propfind>"#,
        url,
    ]);
    assert_eq!(code, 207, "{}", String::from_utf8_lossy(&out));
    String::from_utf8_lossy(&out).into_owned()
}

/// A file's dead properties go where the native door moves it, and
/// nowhere once it removes it: set through `a` (an HTTP base URL), moved
/// and removed through the native door of `b` (`host:port`), read
/// through `a` again.
pub fn properties_follow_the_native_door(a: &str, b: &str) {
    let put = |p: &str, body: &str| {
        let (code, _, _) =
            super::s3::curl_headers(&["-X", "PUT", "--data-binary", body, &format!("{a}{p}")]);
        assert_eq!(code, 201, "PUT {p}");
    };
    put("/n1.txt", "one");
    assert_eq!(set_colour(&format!("{a}/n1.txt"), "green").0, 207);
    super::s3::cli_ok(&["mv", &format!("{b}:/n1.txt"), "/n2.txt"]);
    assert!(colours(&format!("{a}/n2.txt"), "0").contains(">green</"));
    // A new file at the old name has none.
    put("/n1.txt", "new");
    let shown = colours(&format!("{a}/n1.txt"), "0");
    assert!(!shown.contains("colour"), "{shown}");
    super::s3::cli_ok(&["rm", &format!("{b}:/n2.txt")]);
    put("/n2.txt", "new");
    let shown = colours(&format!("{a}/n2.txt"), "0");
    assert!(!shown.contains("colour"), "{shown}");
}

/// A WebDAV COPY of a folder takes the folders' own properties as well as
/// its files' (RFC 4918 §9.8.2). `a` is an HTTP base URL.
pub fn folder_copies_take_their_properties(a: &str) {
    let call = |method: &str, p: &str, extra: &[&str]| {
        let u = format!("{a}{p}");
        let mut args = vec!["-X", method];
        args.extend_from_slice(extra);
        args.push(&u);
        super::s3::curl_headers(&args).0
    };
    assert_eq!(call("MKCOL", "/fc", &[]), 201);
    assert_eq!(call("MKCOL", "/fc/sub", &[]), 201);
    assert_eq!(call("PUT", "/fc/sub/x.txt", &["--data-binary", "x"]), 201);
    for (p, c) in [
        ("/fc/", "top"),
        ("/fc/sub/", "inner"),
        ("/fc/sub/x.txt", "file"),
    ] {
        assert_eq!(set_colour(&format!("{a}{p}"), c).0, 207, "{p}");
    }
    let dest = format!("Destination: {a}/fc2/");
    assert_eq!(call("COPY", "/fc/", &["-H", &dest]), 201);
    for (p, c) in [
        ("/fc2/", "top"),
        ("/fc2/sub/", "inner"),
        ("/fc2/sub/x.txt", "file"),
    ] {
        let shown = colours(&format!("{a}{p}"), "0");
        assert!(shown.contains(&format!(">{c}</")), "{p}: {shown}");
    }
    // The source keeps its own.
    assert!(colours(&format!("{a}/fc/sub/"), "0").contains(">inner</"));
}
