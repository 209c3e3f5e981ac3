//! The habits people bring from the tools ferry replaces, through the real
//! binary: ports and sizes typed the usual ways, usage errors exiting 2.

mod common;

use std::process::Command;

use common::{run_cli, spawn_bin_server};

/// Whatever the command line gets wrong is a usage error: exit status 2,
/// and a message that names what was wrong.
#[test]
fn out_of_range_ports_and_bad_sizes_are_usage_errors() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path().to_str().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (&["serve", r, "--listen", "70000"], "70000"),
        (&["serve", r, "--listen", "127.0.0.1:70000"], "70000"),
        (&["serve", r, "--listen", ":0"], "0"),
        (&["serve", r, "-p", "70000"], "70000"),
        (&["serve", r, "-p", "0"], "0"),
        (
            &["serve", r, "-p", "7000", "--listen", "127.0.0.1:7000"],
            "--listen",
        ),
        (&["serve", r, "--max-upload", "12X"], "12X"),
        (&["ls", "127.0.0.1:70000:/"], "port"),
        (&["get", "127.0.0.1:99999:/f", r], "port"),
        (&["exec", "127.0.0.1:65536", "--", "true"], "port"),
    ];
    for (args, named) in cases {
        let (code, _, err) = run_cli(args, &[]);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains(named), "{args:?} should name {named}: {err}");
    }
}

/// `--max-upload 1K` is 1024 bytes, as the help's sizes are powers of 1024.
#[test]
fn sizes_take_units() {
    let root = tempfile::tempdir().unwrap();
    let srv = spawn_bin_server(root.path(), &["--allow-upload", "--max-upload", "1K"], &[]);
    let local = tempfile::tempdir().unwrap();
    let fits = local.path().join("fits.bin");
    let over = local.path().join("over.bin");
    std::fs::write(&fits, vec![7u8; 1024]).unwrap();
    std::fs::write(&over, vec![7u8; 1025]).unwrap();
    let to = |name: &str| format!("127.0.0.1:{}:/{name}", srv.port);
    let (code, _, err) = run_cli(&["put", fits.to_str().unwrap(), &to("fits.bin")], &[]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = run_cli(&["put", over.to_str().unwrap(), &to("over.bin")], &[]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("1024"), "{err}");
    assert!(root.path().join("fits.bin").exists() && !root.path().join("over.bin").exists());
}

/// `-p PORT`, `--listen PORT` and `--listen :PORT` listen on both
/// families, as the default does. Checked in a network namespace of the
/// test's own (only its loopback), since they bind every address.
#[test]
fn a_port_alone_listens_on_both_families() {
    let can = Command::new("unshare")
        .args(["--net", "true"])
        .status()
        .is_ok_and(|s| s.success());
    if !can {
        common::checked_nothing("network namespaces cannot be made here");
        return;
    }
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("here.txt"), "here").unwrap();
    let state = tempfile::tempdir().unwrap();
    // In the namespace: loopback up, the server started with the flags
    // given, then a listing over IPv4 and one over IPv6.
    let script = r#"
        ip link set lo up || exit 97
        bin=$1; root=$2; state=$3; port=$4; shift 4
        "$bin" serve "$root" --state-dir "$state" --no-discovery "$@" 2>"$state/log" &
        srv=$!
        trap 'kill $srv 2>/dev/null' EXIT
        for _ in $(seq 50); do
            "$bin" ls "127.0.0.1:$port:/" >/dev/null 2>&1 && break
            sleep 0.1
        done
        "$bin" ls "127.0.0.1:$port:/" && "$bin" ls "[::1]:$port:/"
    "#;
    for flags in [
        &["-p", "7171"][..],
        &["--listen", "7172"],
        &["--listen", ":7173"],
    ] {
        let port = flags[1].trim_start_matches(':');
        let out = Command::new("unshare")
            .args(["--net", "sh", "-c", script, "sh", common::ferry_bin()])
            .args([root.path(), state.path()].map(|p| p.to_str().unwrap()))
            .arg(port)
            .args(flags)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let log = std::fs::read_to_string(state.path().join("log")).unwrap_or_default();
        assert!(out.status.success(), "{flags:?}: {stdout} {log}");
        assert_eq!(stdout.matches("here.txt").count(), 2, "{flags:?}: {stdout}");
    }
}

fn succeeded(out: &std::process::Output) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
}

/// `ferry get HOST:/f -` writes the file to standard output, and `ferry
/// put - HOST:/f` reads standard input, piped or redirected; neither makes
/// a file named `-`.
#[test]
fn a_dash_is_standard_output_and_standard_input() {
    use std::io::Write;
    use std::process::Stdio;
    let root = tempfile::tempdir().unwrap();
    let body = common::noise(3 << 20, 24);
    std::fs::write(root.path().join("f.bin"), &body).unwrap();
    std::fs::create_dir(root.path().join("dir")).unwrap();
    let srv = spawn_bin_server(root.path(), &["--allow-upload"], &[]);
    let at = |p: &str| format!("127.0.0.1:{}:{p}", srv.port);
    let cwd = tempfile::tempdir().unwrap();
    let ferry = |args: &[&str]| {
        let mut c = Command::new(common::ferry_bin());
        c.args(args)
            .current_dir(cwd.path())
            .env_remove("FERRY_TOKEN");
        c
    };

    let out = ferry(&["get", &at("/f.bin"), "-"]).output().unwrap();
    succeeded(&out);
    assert!(out.stdout == body, "stdout is not the file");

    let mut piped = ferry(&["put", "-", &at("/from-pipe.bin")])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    piped.stdin.take().unwrap().write_all(&body).unwrap();
    let out = piped.wait_with_output().unwrap();
    succeeded(&out);
    assert!(std::fs::read(root.path().join("from-pipe.bin")).unwrap() == body);

    let redirected = std::fs::File::open(root.path().join("f.bin")).unwrap();
    let out = ferry(&["put", "-", &at("/from-file.bin")])
        .stdin(redirected)
        .output()
        .unwrap();
    succeeded(&out);
    assert!(std::fs::read(root.path().join("from-file.bin")).unwrap() == body);

    // A file read part way (`{ read line; ferry put - …; } < file`): what
    // is left of it, as a pipe would give.
    let mut part_way = std::fs::File::open(root.path().join("f.bin")).unwrap();
    std::io::Seek::seek(&mut part_way, std::io::SeekFrom::Start(1000)).unwrap();
    let out = ferry(&["put", "-", &at("/rest.bin")])
        .stdin(part_way)
        .output()
        .unwrap();
    succeeded(&out);
    assert!(std::fs::read(root.path().join("rest.bin")).unwrap() == body[1000..]);

    // A folder to stdout, stdin among other sources, and stdin into a
    // folder are usage errors.
    for args in [
        vec!["get".to_string(), at("/dir"), "-".into()],
        vec!["get".into(), "-r".into(), at("/dir"), "-".into()],
        vec!["put".into(), "-".into(), "-".into(), at("/x.bin")],
        vec!["put".into(), "-".into(), at("/dir")],
    ] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = ferry(&args).stdin(Stdio::null()).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
    assert!(!cwd.path().join("-").exists());
    assert!(!root.path().join("-").exists() && !root.path().join("x.bin").exists());
    // Nothing kept in the temporary folder.
    let left: Vec<_> = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".ferry-stdin-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// The README's UDP `time` one-liner, as printed, answers with Debian's
/// ncat and with OpenBSD netcat alike.
#[test]
fn the_readme_time_one_liner_works_with_either_netcat() {
    let readme = include_str!("../README.md");
    let line = readme
        .lines()
        .find(|l| l.contains("# the classic text query"))
        .expect("the README shows the one-liner");
    let command = line.split('#').next().unwrap().trim();
    let root = tempfile::tempdir().unwrap();
    let srv = spawn_bin_server(root.path(), &[], &[]);
    let port = srv.port.to_string();
    for nc in ["ncat", "nc.openbsd"] {
        let run = command
            .replace(" nc ", &format!(" {nc} "))
            .replace("nas", "127.0.0.1")
            .replace("7070", &port);
        let out = Command::new("timeout")
            .args(["10", "sh", "-c", &run])
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&out.stdout);
        let date = said.trim();
        let shaped = date.len() == 19
            && date.as_bytes()[4] == b'-'
            && date.as_bytes()[10] == b' '
            && date.as_bytes()[13] == b':';
        assert!(
            shaped,
            "{run}: {said:?} {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The start-up summary says whether commands may be run, and for whom.
#[test]
fn the_summary_says_whether_exec_is_on() {
    let root = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let summary = |extra: &[&str]| {
        let out = Command::new("timeout")
            .args(["2", common::ferry_bin(), "serve"])
            .arg(root.path())
            .args(["--listen", "127.0.0.1:0", "--no-discovery", "--state-dir"])
            .arg(state.path())
            .args(extra)
            .env("FERRY_TOKEN", "a-token-for-the-summary")
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let on = summary(&["--allow-exec"]);
    assert!(
        on.contains("with the token: read, run commands; without: read"),
        "{on}"
    );
    let off = summary(&[]);
    assert!(off.contains("with the token: read; without: read"), "{off}");
    // Rights per folder for anonymous clients are said as given.
    let config = state.path().join("ferry.toml");
    std::fs::write(
        &config,
        "[anonymous]\nrights = [\"/:read\", \"/drop:upload\"]\n",
    )
    .unwrap();
    let per_folder = summary(&["--config", config.to_str().unwrap()]);
    assert!(
        per_folder.contains("without: per folder, /drop:upload, /:read"),
        "{per_folder}"
    );
}

/// A client pointed at something that is not ferry says what it reached,
/// and does not hang: an HTTP server, or a port that accepts and says
/// nothing (within the hello's 10 s deadline). Exit status 255.
#[test]
fn the_wrong_service_is_named_not_waited_on() {
    use std::net::TcpListener;
    use std::time::{Duration, Instant};
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut http = Command::new("python3")
        .args([
            "-m",
            "http.server",
            "--bind",
            "127.0.0.1",
            &port.to_string(),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let target = format!("127.0.0.1:{port}");
    let mut said = (0, String::new(), String::new());
    for _ in 0..50 {
        said = run_cli(&["ls", &target], &[]);
        if !said.2.contains("cannot connect") || said.2.contains("answered") {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = http.kill();
    let _ = http.wait();
    assert_eq!(said.0, 255, "{}", said.2);
    assert!(said.2.contains("an HTTP server answered"), "{}", said.2);

    // Accepts, reads, never answers.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let target = format!("127.0.0.1:{}", silent.local_addr().unwrap().port());
    let (done, wait) = std::sync::mpsc::channel::<()>();
    let holder = std::thread::spawn(move || {
        let (conn, _) = silent.accept().unwrap();
        let _ = wait.recv_timeout(Duration::from_secs(30));
        drop(conn);
    });
    let started = Instant::now();
    let (code, _, err) = run_cli(&["ls", &target], &[]);
    let took = started.elapsed();
    assert_eq!(code, 255, "{err}");
    assert!(
        err.contains("did not answer ferry's hello within 10 s"),
        "{err}"
    );
    assert!(took < Duration::from_secs(14), "{took:?}");
    drop(done);
    holder.join().unwrap();
}

/// `ferry completions bash` completes commands and flags in a real bash;
/// the other shells get a script naming every command; `ferry man` is a
/// manual page naming every command, and `--dir` writes one page each.
#[test]
fn completions_and_manual_pages_come_from_the_cli() {
    let bin = common::ferry_bin();
    let complete = |words: &str, cword: usize| {
        let script = format!(
            "source <({bin} completions bash); COMP_WORDS=({words}); COMP_CWORD={cword}; \
             _ferry ferry \"${{COMP_WORDS[$COMP_CWORD]}}\" \"${{COMP_WORDS[$COMP_CWORD-1]}}\"; \
             echo \"${{COMPREPLY[@]}}\""
        );
        let out = Command::new("bash").arg("-c").arg(script).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert_eq!(complete("ferry se", 1), "serve");
    assert_eq!(complete("ferry serve --hid", 2), "--hidden");
    assert!(complete("ferry get -", 2).contains("--recursive"));
    let commands = [
        "serve", "ls", "stat", "get", "put", "rm", "mkdir", "mv", "chat", "exec", "shell", "time",
        "subnet", "ping", "discover",
    ];
    for shell in ["zsh", "fish", "elvish", "powershell"] {
        let (code, out, err) = run_cli(&["completions", shell], &[]);
        assert_eq!(code, 0, "{err}");
        for c in commands {
            assert!(out.contains(c), "{shell} lacks {c}");
        }
    }
    let (code, _, err) = run_cli(&["completions", "tcsh"], &[]);
    assert_eq!(code, 2, "{err}");

    let (code, page, err) = run_cli(&["man"], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(
        page.contains(".TH ferry 1") && page.contains(".SH SYNOPSIS"),
        "{page}"
    );
    for c in commands {
        assert!(
            page.contains(&format!("ferry\\-{c}(1)")),
            "the page lacks {c}"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let man1 = dir.path().join("man1");
    let (code, _, err) = run_cli(&["man", "--dir", man1.to_str().unwrap()], &[]);
    assert_eq!(code, 0, "{err}");
    for c in commands {
        let page = std::fs::read_to_string(man1.join(format!("ferry-{c}.1"))).unwrap();
        assert!(page.contains(".SH OPTIONS"), "ferry-{c}.1");
    }
    // The page renders as man would show it.
    let out = Command::new("man")
        .arg("-l")
        .arg(man1.join("ferry-get.1"))
        .env("MANPAGER", "cat")
        .env("MANWIDTH", "80")
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && shown.contains("--recursive"),
        "{shown}"
    );
}

/// `ferry put`'s usage line names the sources, then the one destination.
#[test]
fn the_put_usage_line_reads_sources_then_destination() {
    let (code, out, _) = run_cli(&["put", "--help"], &[]);
    assert_eq!(code, 0);
    assert!(
        out.contains("Usage: ferry put [OPTIONS] <LOCAL>... <REMOTE>"),
        "{out}"
    );
    let (code, _, err) = run_cli(&["put", "only-one"], &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("<LOCAL>... <REMOTE>"), "{err}");
}

/// `ping` and `discover` list exec where it is on, and only there.
#[test]
fn ping_and_discover_list_exec_only_where_it_is_on() {
    let root = tempfile::tempdir().unwrap();
    let token = [("FERRY_TOKEN", "a-token-for-the-features")];
    let on = spawn_bin_server(root.path(), &["--allow-exec"], &token);
    let off = spawn_bin_server(root.path(), &[], &token);
    let features = |v: &serde_json::Value| -> Vec<String> {
        v["features"]
            .as_array()
            .unwrap_or_else(|| panic!("no features in {v}"))
            .iter()
            .map(|f| f.as_str().unwrap().to_owned())
            .collect()
    };
    for (srv, exec) in [(&on, true), (&off, false)] {
        let at = format!("127.0.0.1:{}", srv.port);
        let (code, out, err) = run_cli(&["ping", &at, "-c", "1", "--json"], &[]);
        assert_eq!(code, 0, "{err}");
        let ping: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(features(&ping).contains(&"exec".into()), exec, "{out}");

        let (code, out, err) = run_cli(&["discover", "--to", &at, "--timeout", "1", "--json"], &[]);
        assert_eq!(code, 0, "{err}");
        let found: serde_json::Value = serde_json::from_str(&out).unwrap();
        let servers = found["servers"].as_array().unwrap();
        assert_eq!(servers.len(), 1, "{out}");
        let server = &servers[0];
        assert_eq!(features(server).contains(&"exec".into()), exec, "{out}");
    }
}

/// Times in JSON are RFC 3339 strings with the epoch seconds beside
/// them, from the CLI and from the web door alike.
#[test]
fn json_times_are_rfc3339() {
    let root = tempfile::tempdir().unwrap();
    let file = root.path().join("dated.txt");
    std::fs::write(&file, "x").unwrap();
    let when = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_614_834_367);
    std::fs::File::options()
        .write(true)
        .open(&file)
        .unwrap()
        .set_modified(when)
        .unwrap();
    let srv = spawn_bin_server(root.path(), &[], &[]);
    let at = |p: &str| format!("127.0.0.1:{}:{p}", srv.port);
    let check = |v: &serde_json::Value, from: &str| {
        let mtime = v["mtime"].as_str().unwrap_or_else(|| panic!("{from}: {v}"));
        assert!(mtime.starts_with("2021-03-04T05:06:07"), "{from}: {mtime}");
        assert!(
            mtime.ends_with('Z') || mtime.ends_with("+00:00"),
            "{from}: {mtime}"
        );
        assert_eq!(
            v["mtime_unix"].as_f64().map(|t| t as u64),
            Some(1_614_834_367)
        );
    };
    let (code, out, err) = run_cli(&["stat", &at("/dated.txt"), "--json"], &[]);
    assert_eq!(code, 0, "{err}");
    check(&serde_json::from_str(&out).unwrap(), "stat");
    let (code, out, err) = run_cli(&["ls", &at("/"), "--json"], &[]);
    assert_eq!(code, 0, "{err}");
    let listed: serde_json::Value = serde_json::from_str(&out).unwrap();
    let entry = listed
        .as_array()
        .or_else(|| listed["entries"].as_array())
        .and_then(|a| a.iter().find(|e| e["name"] == "dated.txt"))
        .unwrap_or_else(|| panic!("ls: {out}"))
        .clone();
    check(&entry, "ls");
    let out = Command::new("curl")
        .args(["-sf", &format!("http://127.0.0.1:{}/?json", srv.port)])
        .output()
        .unwrap();
    succeeded(&out);
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let entry = listed
        .as_array()
        .or_else(|| listed["entries"].as_array())
        .and_then(|a| a.iter().find(|e| e["name"] == "dated.txt"))
        .unwrap_or_else(|| panic!("?json: {listed}"))
        .clone();
    check(&entry, "?json");
}

/// A TLS server where ferry's hello was expected is named as such, though
/// it only closes the connection on ferry's hello (as OpenSSL's does).
#[test]
fn a_tls_server_is_named() {
    use std::time::Duration;
    let dir = tempfile::tempdir().unwrap();
    let (key, cert) = (dir.path().join("key.pem"), dir.path().join("cert.pem"));
    let made = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args([
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=t",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl (scripts/test installs it)");
    succeeded(&made);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut tls = Command::new("openssl")
        .args([
            "s_server",
            "-quiet",
            "-accept",
            &format!("127.0.0.1:{port}"),
        ])
        .arg("-cert")
        .arg(&cert)
        .arg("-key")
        .arg(&key)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let target = format!("127.0.0.1:{port}");
    let mut said = (0, String::new(), String::new());
    for _ in 0..50 {
        said = run_cli(&["ls", &target], &[]);
        if !said.2.contains("refused") {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = tls.kill();
    let _ = tls.wait();
    assert_eq!(said.0, 255, "{}", said.2);
    assert!(said.2.contains("a TLS server answered"), "{}", said.2);

    // One that closes on the hello and is not TLS is not called TLS.
    let closer = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let target = format!("127.0.0.1:{}", closer.local_addr().unwrap().port());
    let shut = std::thread::spawn(move || {
        for _ in 0..2 {
            let (mut conn, _) = closer.accept().unwrap();
            let mut some = [0u8; 16];
            let _ = std::io::Read::read(&mut conn, &mut some);
        }
    });
    let (code, _, err) = run_cli(&["ls", &target], &[]);
    assert_eq!(code, 255, "{err}");
    assert!(
        err.contains("closed the connection without answering") && !err.contains("TLS"),
        "{err}"
    );
    shut.join().unwrap();
}

/// Sizes typed as `500M`, `1G` and `8GiB` are powers of 1024: an upload
/// one byte over each is refused before any byte is sent, naming the limit.
#[test]
fn sizes_in_megabytes_and_gigabytes() {
    let local = tempfile::tempdir().unwrap();
    for (typed, bytes) in [("500M", 500u64 << 20), ("1G", 1 << 30), ("8GiB", 8 << 30)] {
        let root = tempfile::tempdir().unwrap();
        let srv = spawn_bin_server(root.path(), &["--allow-upload", "--max-upload", typed], &[]);
        // A sparse file: its size is announced, and it is refused on that.
        let over = local.path().join(format!("over-{typed}.bin"));
        std::fs::File::create(&over)
            .unwrap()
            .set_len(bytes + 1)
            .unwrap();
        let to = format!("127.0.0.1:{}:/over.bin", srv.port);
        let (code, _, err) = run_cli(&["put", over.to_str().unwrap(), &to], &[]);
        assert_eq!(code, 1, "{typed}: {err}");
        assert!(err.contains(&bytes.to_string()), "{typed}: {err}");
        std::fs::remove_file(&over).unwrap();
    }
}
