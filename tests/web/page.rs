//! What the page asks the server for beyond files: folder and selection
//! zips (opened with Python's zipfile, bytes compared), search below a
//! folder, thumbnails (and the images that must not get one), Markdown
//! rendered without raw HTML, and QR codes.

use super::*;
use std::io::{Seek, SeekFrom, Write};
use std::process::Command;

/// Python's zipfile on `zip`: each member's name, size and SHA-256 (its
/// CRC checked by reading), one per line, sorted.
pub(super) fn python_zip_members(zip: &std::path::Path) -> String {
    let script = r#"
import hashlib, sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
out = []
for i in z.infolist():
    h = hashlib.sha256()
    with z.open(i) as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                break
            h.update(b)
    out.append("%s\t%d\t%s" % (i.filename, i.file_size, h.hexdigest()))
print("\n".join(sorted(out)))
"#;
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(zip)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "zipfile refused the archive: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

async fn fetch_to(s: &TestServer, path: &str, to: &std::path::Path) -> StatusCode {
    let mut r = http().get(url(s, path)).send().await.unwrap();
    let status = r.status();
    let mut f = std::fs::File::create(to).unwrap();
    while let Some(chunk) = r.chunk().await.unwrap() {
        f.write_all(&chunk).unwrap();
    }
    status
}

#[tokio::test]
async fn a_folder_and_a_selection_download_as_zips_python_opens() {
    let s = TestServer::start(|_| {}).await;
    std::fs::create_dir_all(s.path("top/a/b/c")).unwrap();
    std::fs::create_dir_all(s.path("top/empty")).unwrap();
    let big = common::noise(3 * 1024 * 1024 + 17, 7);
    std::fs::write(s.path("top/a/b/c/deep.bin"), &big).unwrap();
    std::fs::write(s.path("top/café & <b>.txt"), "unicode").unwrap();
    std::fs::write(s.path("top/zero"), "").unwrap();
    std::fs::write(s.path("top/.hidden"), "hidden").unwrap();
    // Colons, which zip readers take for a drive letter and cut off with
    // what comes before: never a way out of the folder.
    std::fs::create_dir_all(s.path("top/ev:.ssh")).unwrap();
    std::fs::write(s.path("top/ev:.ssh/authorized_keys"), "key").unwrap();
    std::fs::create_dir_all(s.path("top/up:..")).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let zip = tmp.path().join("top.zip");
    assert_eq!(fetch_to(&s, "/top/?zip", &zip).await, StatusCode::OK);
    let members = python_zip_members(&zip);
    let sha = |b: &[u8]| common::hex(&<sha2::Sha256 as sha2::Digest>::digest(b));
    let empty = sha(b"");
    let mut want = [
        format!("top/\t0\t{empty}"),
        format!("top/a/\t0\t{empty}"),
        format!("top/a/b/\t0\t{empty}"),
        format!("top/a/b/c/\t0\t{empty}"),
        format!("top/a/b/c/deep.bin\t{}\t{}", big.len(), sha(&big)),
        format!("top/café & <b>.txt\t7\t{}", sha(b"unicode")),
        format!("top/empty/\t0\t{empty}"),
        format!("top/ev_.ssh/\t0\t{empty}"),
        format!("top/ev_.ssh/authorized_keys\t3\t{}", sha(b"key")),
        format!("top/up_../\t0\t{empty}"),
        format!("top/zero\t0\t{empty}"),
    ];
    want.sort();
    assert_eq!(members.trim(), want.join("\n"));

    // A selection: the picked names at the top, folders whole.
    let picked = tmp.path().join("picked.zip");
    let q = "/top/?zip&pick=a&pick=caf%C3%A9+%26+%3Cb%3E.txt";
    assert_eq!(fetch_to(&s, q, &picked).await, StatusCode::OK);
    let names: Vec<String> = python_zip_members(&picked)
        .lines()
        .map(|l| l.split('\t').next().unwrap().to_string())
        .collect();
    assert_eq!(
        names,
        ["a/", "a/b/", "a/b/c/", "a/b/c/deep.bin", "café & <b>.txt"]
    );
    // Picks that are not single names in the folder, or not there.
    let c = http();
    // Picked twice: once in the archive.
    let twice = tmp.path().join("twice.zip");
    let q = "/top/?zip&pick=zero&pick=zero";
    assert_eq!(fetch_to(&s, q, &twice).await, StatusCode::OK);
    assert_eq!(python_zip_members(&twice).lines().count(), 1);
    // A FIFO picked is refused, not an empty archive; so is a name that
    // is not UTF-8.
    let fifo = s.path("top/pipe");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    for (q, want) in [
        ("/top/?zip&pick=pipe", StatusCode::FORBIDDEN),
        ("/top/?zip&pick=%ff", StatusCode::BAD_REQUEST),
    ] {
        assert_eq!(http().get(url(&s, q)).send().await.unwrap().status(), want);
    }
    for bad in ["../x", "a/b", "", ".hidden", "nothing-here"] {
        let q = format!("/top/?zip&pick={}", percent(bad));
        let r = c.get(url(&s, &q)).send().await.unwrap();
        assert!(r.status().is_client_error(), "pick {bad:?}: {}", r.status());
    }
    // tar takes picks too.
    let r = c.get(url(&s, "/top/?tar&pick=zero")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body = r.bytes().await.unwrap();
    assert!(body.len() >= 1024 && body.starts_with(b"zero"));
}

fn percent(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b == b'.' || b == b'-' {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[tokio::test]
async fn a_zip_past_4_gib_is_zip64_and_opens_whole() {
    let s = TestServer::start(|_| {}).await;
    std::fs::create_dir(s.path("big")).unwrap();
    // Sparse: 4 GiB of holes, then bytes that must come back at the end.
    let size = (4u64 << 30) + 4096;
    let mut f = std::fs::File::create(s.path("big/huge.bin")).unwrap();
    f.seek(SeekFrom::Start(size - 11)).unwrap();
    f.write_all(b"end-of-file").unwrap();
    drop(f);
    std::fs::write(s.path("big/after.txt"), "after the big one").unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let zip = tmp.path().join("big.zip");
    assert_eq!(fetch_to(&s, "/big/?zip", &zip).await, StatusCode::OK);
    let members = python_zip_members(&zip);
    assert!(
        members.contains(&format!("big/huge.bin\t{size}\t")),
        "{members}"
    );
    assert!(members.contains("big/after.txt\t17\t"), "{members}");
    // The zip64 end of central directory record is there.
    let mut f = std::fs::File::open(&zip).unwrap();
    let len = f.metadata().unwrap().len();
    f.seek(SeekFrom::Start(len - 4096)).unwrap();
    let mut tail = Vec::new();
    std::io::Read::read_to_end(&mut f, &mut tail).unwrap();
    assert!(tail.windows(4).any(|w| w == [0x50, 0x4b, 0x06, 0x06]));
}

async fn search(s: &TestServer, folder: &str, q: &str) -> (StatusCode, Vec<serde_json::Value>) {
    let r = http()
        .get(url(s, &format!("{folder}?search={q}")))
        .send()
        .await
        .unwrap();
    let st = r.status();
    let text = r.text().await.unwrap();
    let lines = if st == StatusCode::OK {
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    } else {
        Vec::new()
    };
    (st, lines)
}

#[tokio::test]
async fn search_finds_three_levels_down_and_keeps_to_the_rules() {
    let s = TestServer::start(|_| {}).await;
    std::fs::create_dir_all(s.path("docs/one/two/three")).unwrap();
    std::fs::create_dir_all(s.path("docs/.git/objects")).unwrap();
    std::fs::write(s.path("docs/one/two/three/Needle-Report.txt"), "x").unwrap();
    std::fs::write(s.path("docs/one/needle.md"), "y").unwrap();
    std::fs::write(s.path("docs/.git/objects/needle"), "z").unwrap();
    std::fs::write(s.path("outside-needle.txt"), "w").unwrap();
    std::os::unix::fs::symlink("..", s.path("docs/one/loop")).unwrap();
    let (st, lines) = search(&s, "/docs/", "needle").await;
    assert_eq!(st, StatusCode::OK);
    let paths: Vec<&str> = lines.iter().filter_map(|l| l["path"].as_str()).collect();
    // Nearer first; hidden names and what lies outside the folder left
    // out; the linked folder not walked again.
    assert_eq!(paths, ["one/needle.md", "one/two/three/Needle-Report.txt"]);
    let end = lines.last().unwrap();
    assert_eq!(end["done"], true);
    assert!(end["cut"].is_null());
    assert_eq!(lines[1]["size"], 1);
    // Several words, all in the name.
    let (_, lines) = search(&s, "/docs/", "report+needle").await;
    assert_eq!(lines.len(), 2);
    // A bound on results says so.
    for i in 0..30 {
        std::fs::write(s.path(&format!("docs/many-{i}.txt")), "m").unwrap();
    }
    let (_, lines) = search(&s, "/docs/", "many&limit=5").await;
    assert_eq!(lines.len(), 6);
    assert_eq!(lines[5]["cut"], "results");
    // Bad inputs: empty, too long, a file, outside.
    assert_eq!(search(&s, "/docs/", "").await.0, StatusCode::BAD_REQUEST);
    assert_eq!(search(&s, "/docs/", "+++").await.0, StatusCode::BAD_REQUEST);
    let long = "x".repeat(300);
    assert_eq!(search(&s, "/docs/", &long).await.0, StatusCode::BAD_REQUEST);
    assert_eq!(search(&s, "/nope/", "x").await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_search_given_up_by_its_client_stops() {
    let s = TestServer::start(|_| {}).await;
    for i in 0..200 {
        let d = s.path(&format!("d{i}"));
        std::fs::create_dir(&d).unwrap();
        for j in 0..50 {
            std::fs::write(d.join(format!("f{j}.txt")), "").unwrap();
        }
    }
    // A raw request read for a moment and dropped: the server goes on
    // answering others.
    let mut c = s
        .raw(b"GET /?search=f&limit=10000 HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await;
    let mut buf = [0u8; 512];
    let n = c.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    drop(c);
    let (st, lines) = search(&s, "/d7/", "f1").await;
    assert_eq!(st, StatusCode::OK);
    // f1, f10..f19 and the end.
    assert_eq!(lines.len(), 12);
}

async fn get(s: &TestServer, path: &str) -> (StatusCode, Option<String>, Vec<u8>) {
    let r = http().get(url(s, path)).send().await.unwrap();
    let st = r.status();
    let ct = r
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_string());
    (st, ct, r.bytes().await.unwrap().to_vec())
}

/// A PNG of `w`×`h` zero pixels, compressed as it is written (a 363 MB
/// image in a few hundred KB): the decompression bomb.
fn bomb_png(path: &std::path::Path, w: u32, h: u32, full: bool) {
    let script = r#"
import struct, sys, zlib
path, w, h, full = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1"
def chunk(t, d):
    return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
z = zlib.compressobj(9)
row = b"\0" * (1 + 3 * w)
data = []
for i in range(h if full else 1):
    data.append(z.compress(row))
data.append(z.flush())
with open(path, "wb") as f:
    f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)))
    f.write(chunk(b"IDAT", b"".join(data)) + chunk(b"IEND", b""))
"#;
    let ok = Command::new("python3")
        .args(["-c", script])
        .arg(path)
        .args([w.to_string(), h.to_string()])
        .arg(if full { "1" } else { "0" })
        .status()
        .unwrap();
    assert!(ok.success());
}

fn encoded(format: image::ImageFormat, w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([x as u8, y as u8, 90]));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, format).unwrap();
    out.into_inner()
}

fn peak_memory_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap()
}

#[test]
fn thumbnails_for_images_and_a_refusal_for_hostile_ones() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    std::fs::write(
        r.join("photo.jpg"),
        encoded(image::ImageFormat::Jpeg, 900, 600),
    )
    .unwrap();
    std::fs::write(
        r.join("shot.png"),
        encoded(image::ImageFormat::Png, 300, 1200),
    )
    .unwrap();
    let mut cut = encoded(image::ImageFormat::Jpeg, 800, 800);
    cut.truncate(cut.len() / 3);
    std::fs::write(r.join("truncated.jpg"), cut).unwrap();
    bomb_png(&r.join("bomb.png"), 11_000, 11_000, true);
    bomb_png(&r.join("huge.png"), 20_000, 20_000, false);
    std::fs::write(
        r.join("evil.svg"),
        r#"<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>"#,
    )
    .unwrap();
    std::fs::write(r.join("fake.png"), "<html><script>alert(1)</script>").unwrap();
    let srv = common::spawn_bin_server(r, &["--no-discovery"], &[]);
    let base = format!("http://127.0.0.1:{}", srv.port);
    let fetch = |p: &str| {
        let out = Command::new("curl")
            .args(["-s", "-o", "-", "-w", "\n%{http_code} %{content_type}"])
            .arg(format!("{base}{p}"))
            .output()
            .unwrap();
        let all = out.stdout;
        let cut = all.iter().rposition(|&b| b == b'\n').unwrap();
        let tail = String::from_utf8_lossy(&all[cut + 1..]).into_owned();
        (tail, all[..cut].to_vec())
    };
    for (name, w, h) in [("photo.jpg", 256, 171), ("shot.png", 64, 256)] {
        let (tail, body) = fetch(&format!("/{name}?thumb"));
        assert_eq!(tail, "200 image/jpeg", "{name}");
        let img = image::load_from_memory(&body).unwrap();
        assert_eq!((img.width(), img.height()), (w, h), "{name}");
        // Kept in the state folder: asked again, the same bytes.
        assert_eq!(fetch(&format!("/{name}?thumb")).1, body);
    }
    let before = peak_memory_kib(srv.child.id());
    // A truncated JPEG gets what could be decoded (as in a browser), or
    // nothing; never a failed server.
    let (tail, body) = fetch("/truncated.jpg?thumb");
    match tail.as_str() {
        "200 image/jpeg" => assert!(image::load_from_memory(&body).is_ok()),
        t => assert!(t.starts_with("415 "), "truncated.jpg: {t}"),
    }
    for name in ["bomb.png", "huge.png", "evil.svg", "fake.png"] {
        let (tail, body) = fetch(&format!("/{name}?thumb"));
        assert!(tail.starts_with("415 "), "{name}: {tail}");
        assert!(
            String::from_utf8_lossy(&body).starts_with("no thumbnail"),
            "{name}"
        );
    }
    let peak = peak_memory_kib(srv.child.id());
    assert!(
        peak < before + 200 * 1024,
        "hostile images took {} MiB (from {} MiB)",
        peak / 1024,
        before / 1024
    );
    // A changed file misses the cache.
    std::fs::write(
        r.join("shot.png"),
        encoded(image::ImageFormat::Png, 1200, 300),
    )
    .unwrap();
    let (_, body) = fetch("/shot.png?thumb");
    let img = image::load_from_memory(&body).unwrap();
    assert_eq!((img.width(), img.height()), (256, 64));
    // The SVG itself is served inert.
    let out = Command::new("curl")
        .args(["-s", "-D", "-", "-o", "/dev/null"])
        .arg(format!("{base}/evil.svg"))
        .output()
        .unwrap();
    let head = String::from_utf8_lossy(&out.stdout).to_lowercase();
    assert!(head.contains("content-security-policy: sandbox"), "{head}");
    let thumbs = srv.state.join("thumbs");
    assert!(thumbs.is_dir());
}

#[tokio::test]
async fn markdown_renders_without_raw_html_and_qr_codes_are_svg() {
    let s = TestServer::start(|_| {}).await;
    std::fs::write(
        s.path("notes.md"),
        "# Notes\n\n<script>alert(1)</script>\n\n[x](javascript:alert(1)) **bold**\n",
    )
    .unwrap();
    let (st, ct, body) = get(&s, "/notes.md?render").await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(ct.as_deref(), Some("text/html; charset=utf-8"));
    let html = String::from_utf8(body).unwrap();
    assert!(html.contains("<h1>Notes</h1>") && html.contains("<strong>bold</strong>"));
    assert!(
        !html.contains("<script") && !html.contains("javascript:"),
        "{html}"
    );
    let big = "x".repeat(3 * 1024 * 1024);
    std::fs::write(s.path("big.md"), big).unwrap();
    assert_eq!(
        get(&s, "/big.md?render").await.0,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    let (st, ct, body) = get(&s, "/.ferry/qr?text=http%3A%2F%2F127.0.0.1%2Fa%2F").await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(ct.as_deref(), Some("image/svg+xml"));
    assert!(String::from_utf8_lossy(&body).contains("<svg"));
    assert_eq!(get(&s, "/.ferry/qr").await.0, StatusCode::BAD_REQUEST);
    let long = "x".repeat(2000);
    assert_eq!(
        get(&s, &format!("/.ferry/qr?text={long}")).await.0,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn archives_given_up_by_their_clients_stop_and_let_others_through() {
    let s = TestServer::start(|_| {}).await;
    for d in 0..30 {
        let dir = s.path(&format!("big/d{d}"));
        std::fs::create_dir_all(&dir).unwrap();
        for f in 0..1000 {
            std::fs::write(dir.join(format!("file-{f:04}.txt")), "x").unwrap();
        }
    }
    std::fs::create_dir(s.path("small")).unwrap();
    std::fs::write(s.path("small/one.txt"), "one").unwrap();
    // More abandoned archives than may run at once.
    for _ in 0..6 {
        let mut c = s
            .raw(b"GET /big/?zip HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .await;
        let mut buf = [0u8; 256];
        let n = c.read(&mut buf).await.unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    }
    let started = std::time::Instant::now();
    let r = http().get(url(&s, "/small/?zip")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body = r.bytes().await.unwrap();
    assert!(body.windows(7).any(|w| w == b"one.txt"));
    assert!(
        started.elapsed() < std::time::Duration::from_secs(15),
        "waited {:?} behind abandoned archives",
        started.elapsed()
    );
}

/// The page carries the first 200 entries as rows (folders first, then
/// names without regard to case), so the listing paints before any script
/// runs; the rest are rows inside `<noscript>`; every entry is linked once
/// as a row, and a name with HTML in it stays text in both places.
#[tokio::test]
async fn the_first_rows_come_with_the_page_and_the_rest_without_script() {
    let s = TestServer::start(|_| {}).await;
    for i in 0..250 {
        std::fs::write(s.path(&format!("F{i:03}.txt")), "x").unwrap();
    }
    std::fs::create_dir(s.path("zz-folder")).unwrap();
    std::fs::write(s.path("a<b>&.txt"), "y").unwrap();
    let (st, _, body) = get(&s, "/").await;
    assert_eq!(st, StatusCode::OK);
    let page = String::from_utf8(body).unwrap();
    let (list, after) = page
        .split_once("<table id=\"list\">")
        .unwrap()
        .1
        .split_once("</table>")
        .unwrap();
    let noscript = after
        .split_once("<noscript>")
        .unwrap()
        .1
        .split_once("</noscript>")
        .unwrap()
        .0;
    let hrefs = |html: &str| -> Vec<String> {
        html.split("<a href=\"")
            .skip(1)
            .map(|s| s.split('"').next().unwrap().to_string())
            .collect()
    };
    let first = hrefs(list);
    assert_eq!(first.len(), 200);
    assert_eq!(first[0], "/zz-folder/");
    assert_eq!(first[1], "/a%3Cb%3E&amp;.txt");
    assert!(list.contains(">a&lt;b&gt;&amp;.txt</a>"), "{list}");
    assert_eq!(first[2], "/F000.txt");
    assert_eq!(first[199], "/F197.txt");
    let rest = hrefs(noscript);
    assert_eq!(rest.len(), 52);
    assert_eq!(rest[0], "/F198.txt");
    assert_eq!(rest[51], "/F249.txt");
    assert!(!page.contains("<b>"));
}
