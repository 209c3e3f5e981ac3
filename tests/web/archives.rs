//! What a folder archive leaves out (links out of the served folder,
//! links that lead nowhere, links to folders, special files) is named in
//! a note beside the archive's entries, and none of it is followed.

use super::page::python_zip_members;
use super::*;
use std::os::unix::fs::symlink;
use std::process::Command;

/// The text of `member` in `zip`, read by Python's zipfile.
fn python_zip_text(zip: &std::path::Path, member: &str) -> String {
    let script = "import sys, zipfile\nsys.stdout.write(zipfile.ZipFile(sys.argv[1]).read(sys.argv[2]).decode())";
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(zip)
        .arg(member)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The members of `zip` by name, sorted (read whole by Python's zipfile).
fn zip_names(zip: &std::path::Path) -> Vec<String> {
    let members = python_zip_members(zip);
    members
        .lines()
        .map(|l| l.split('\t').next().unwrap().to_string())
        .collect()
}

/// The note's lines after its heading, sorted.
fn noted(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = text.lines().skip(1).map(str::to_string).collect();
    lines.sort();
    lines
}

#[tokio::test]
async fn what_a_folder_archive_leaves_out_is_named_in_a_note_beside_it() {
    let s = TestServer::start(|_| {}).await;
    std::fs::create_dir_all(s.path("top/inner")).unwrap();
    std::fs::write(s.path("top/kept.txt"), "kept").unwrap();
    std::fs::write(s.path("top/inner/deep.txt"), "deep").unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret"), "outside bytes").unwrap();
    symlink(outside.path().join("secret"), s.path("top/out")).unwrap();
    symlink("nowhere", s.path("top/inner/dangling")).unwrap();
    symlink("inner", s.path("top/to-inner")).unwrap();
    let fifo = Command::new("mkfifo").arg(s.path("top/pipe")).status();
    assert!(fifo.unwrap().success());
    let want_noted = [
        "top/inner/dangling\tlink leads outside",
        "top/out\tlink leads outside",
        "top/pipe\tnot a regular file",
        "top/to-inner\tlink to a folder",
    ];

    // zip: every member Python reads, the note last beside the folder.
    let tmp = tempfile::tempdir().unwrap();
    let zip = tmp.path().join("top.zip");
    let mut r = http().get(url(&s, "/top/?zip")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let mut bytes = Vec::new();
    while let Some(chunk) = r.chunk().await.unwrap() {
        bytes.extend_from_slice(&chunk);
    }
    std::fs::write(&zip, &bytes).unwrap();
    let names = zip_names(&zip);
    assert_eq!(
        names,
        [
            "top.left-out.txt",
            "top/",
            "top/inner/",
            "top/inner/deep.txt",
            "top/kept.txt"
        ]
    );
    let note = python_zip_text(&zip, "top.left-out.txt");
    assert!(note.starts_with("Left out of this archive"), "{note}");
    assert_eq!(noted(&note), want_noted);
    assert!(!bytes.windows(13).any(|w| w == b"outside bytes"));

    // tar: the same entries, the same note.
    let r = http().get(url(&s, "/top/?tar")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body = r.bytes().await.unwrap();
    let mut ar = tar::Archive::new(body.as_ref());
    let mut seen = Vec::new();
    let mut note = String::new();
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let path = e.path().unwrap().to_string_lossy().into_owned();
        if path == "top.left-out.txt" {
            std::io::Read::read_to_string(&mut e, &mut note).unwrap();
        }
        seen.push(path);
    }
    assert_eq!(
        seen,
        [
            "top/",
            "top/inner/",
            "top/inner/deep.txt",
            "top/kept.txt",
            "top.left-out.txt"
        ]
    );
    assert_eq!(noted(&note), want_noted);

    // Picks: a picked link out is refused up front; a picked folder
    // brings its own note, named past a pick that has the note's name.
    std::fs::write(s.path("top/top.left-out.txt"), "a file of that name").unwrap();
    let r = http()
        .get(url(&s, "/top/?zip&pick=out"))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_client_error(), "{}", r.status());
    let q = "/top/?zip&pick=inner&pick=top.left-out.txt";
    let r = http().get(url(&s, q)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    std::fs::write(&zip, r.bytes().await.unwrap()).unwrap();
    let names = zip_names(&zip);
    assert_eq!(
        names,
        [
            "inner/",
            "inner/deep.txt",
            "top.left-out (2).txt",
            "top.left-out.txt"
        ]
    );
    assert_eq!(
        python_zip_text(&zip, "top.left-out.txt"),
        "a file of that name"
    );
    let note = python_zip_text(&zip, "top.left-out (2).txt");
    assert_eq!(noted(&note), ["inner/dangling\tlink leads outside"]);

    // A zip writes `:` as `_`: a pick that the note's name would become
    // there is passed over too.
    std::fs::create_dir_all(s.path("ab:cd/sub")).unwrap();
    symlink("nowhere", s.path("ab:cd/sub/dangling")).unwrap();
    std::fs::write(s.path("ab:cd/AB_CD.left-out.txt"), "mine").unwrap();
    let q = "/ab%3Acd/?zip&pick=sub&pick=AB_CD.left-out.txt";
    let r = http().get(url(&s, q)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    std::fs::write(&zip, r.bytes().await.unwrap()).unwrap();
    assert_eq!(
        zip_names(&zip),
        ["AB_CD.left-out.txt", "ab_cd.left-out (2).txt", "sub/"]
    );
    assert_eq!(python_zip_text(&zip, "AB_CD.left-out.txt"), "mine");

    // Nothing left out, no note.
    std::fs::remove_file(s.path("top/inner/dangling")).unwrap();
    let r = http()
        .get(url(&s, "/top/?tar&pick=inner"))
        .send()
        .await
        .unwrap();
    let body = r.bytes().await.unwrap();
    let mut ar = tar::Archive::new(body.as_ref());
    let paths: Vec<String> = ar
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(paths, ["inner/", "inner/deep.txt"]);
    s.stop().await;
}
