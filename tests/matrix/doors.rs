//! One cell: a role tries an action at one door, with that door's own
//! client, and says whether the door allowed it. A refusal must look like
//! one (a 401 or 403, a refusal message); anything else fails the test.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use super::common::run_cli;
use super::{Act, Role, World};

pub(crate) fn try_it(w: &World, door: &str, role: Role, act: Act) -> bool {
    match door {
        "native" => native(w, role, act),
        "http" => http(w, role, act),
        "webdav" => webdav(w, role, act),
        "tus" => tus(w, role, act),
        "classic" => classic(w, act),
        "websocket" => websocket(w, role, act),
        "text" => text(w, act),
        "exec" => cli(w, role, &["exec", &w.host(), "echo", "ran"]).is_some_and(|o| o == "ran\n"),
        _ => unreachable!("{door}"),
    }
}

/// Words that say a refusal was one (and not a usage slip or a crash).
const REFUSALS: [&str; 7] = [
    "rights",
    "needs logging in",
    "needs the token",
    "wrong",
    "not valid",
    "belongs to an account",
    "token",
];

/// The CLI as `role`: its standard output when it succeeded, `None` when
/// it was refused.
fn cli(w: &World, role: Role, args: &[&str]) -> Option<String> {
    let env = w.env(role);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (code, out, err) = run_cli(args, &env);
    if code == 0 {
        return Some(out);
    }
    assert!(
        REFUSALS.iter().any(|r| err.contains(r)),
        "{args:?} as {}: exit {code}, not a refusal: {err}",
        role.name()
    );
    None
}

fn native(w: &World, role: Role, act: Act) -> bool {
    let base = format!("/m/native-{}", role.name());
    let at = |s: &str| format!("{}:{base}{s}", w.host());
    let body = w.scratch.join("body.txt");
    std::fs::write(&body, "new").unwrap();
    let b = body.to_str().unwrap();
    let host = w.host();
    match act {
        Act::List => {
            cli(w, role, &["ls", &format!("{host}:/m")]).is_some_and(|o| o.contains("r.txt"))
        }
        Act::Read => {
            cli(w, role, &["get", &format!("{host}:/m/r.txt"), "-"]).is_some_and(|o| o == "readme")
        }
        Act::Create => cli(w, role, &["put", b, &at("-new")]).is_some(),
        Act::Replace => cli(w, role, &["put", "-f", b, &at("-old.txt")]).is_some(),
        Act::Delete => cli(w, role, &["rm", &at("-del")]).is_some(),
        Act::Move => cli(
            w,
            role,
            &["mv", &at("-mv.txt"), &format!("{base}-moved.txt")],
        )
        .is_some(),
        Act::Chat => {
            let said = format!("native-{}-chat", role.name());
            cli(w, role, &["chat", &host, "--send", &said]).is_some() && heard_from(w, role, &said)
        }
        Act::ChatAsWriter => {
            let said = format!("native-{}-as", role.name());
            cli(
                w,
                role,
                &["chat", &host, "--nick", "writer", "--send", &said],
            )
            .is_some()
                && w.heard(&format!("[lobby] <writer> {said}"))
        }
        Act::Exec => unreachable!(),
    }
}

/// Whether the lobby heard `said` from `role`: under the account's own
/// name for an account, under some name otherwise.
fn heard_from(w: &World, role: Role, said: &str) -> bool {
    match role.account() {
        Some(a) => w.heard(&format!("[lobby] <{a}> {said}")),
        None => {
            let tail = format!("> {said}");
            for _ in 0..50 {
                if w.heard.lock().unwrap().iter().any(|l| l.ends_with(&tail)) {
                    return true;
                }
                std::thread::sleep(Duration::from_millis(40));
            }
            false
        }
    }
}

/// curl as `role`: (status, body). `-i` puts the headers before the body.
fn curl(w: &World, role: Role, args: &[&str]) -> (u16, String) {
    let mut all = w.curl_auth(role);
    all.extend(args.iter().map(|a| a.to_string()));
    super::common::curl(&all)
}

/// A status as allowed (2xx) or refused (401, 403); anything else is a
/// fault of the test or the server.
fn allowed(what: &str, role: Role, (status, body): &(u16, String)) -> bool {
    match status {
        200..=299 => true,
        401 | 403 => false,
        _ => panic!("{what} as {}: {status} {body}", role.name()),
    }
}

fn http(w: &World, role: Role, act: Act) -> bool {
    let base = format!("/m/http-{}", role.name());
    let body = w.scratch.join("body.txt");
    let b = body.to_str().unwrap();
    let what = format!("http {act:?}");
    match act {
        Act::List => {
            let r = curl(w, role, &[&w.url("/m/?json")]);
            allowed(&what, role, &r) && r.1.contains("r.txt")
        }
        Act::Read => {
            let r = curl(w, role, &[&w.url("/m/r.txt")]);
            allowed(&what, role, &r) && r.1 == "readme"
        }
        Act::Create => allowed(
            &what,
            role,
            &curl(w, role, &["-T", b, &w.url(&format!("{base}-new"))]),
        ),
        Act::Replace => allowed(
            &what,
            role,
            &curl(w, role, &["-T", b, &w.url(&format!("{base}-old.txt"))]),
        ),
        Act::Delete => allowed(
            &what,
            role,
            &curl(w, role, &["-X", "DELETE", &w.url(&format!("{base}-del"))]),
        ),
        _ => unreachable!(),
    }
}

fn webdav(w: &World, role: Role, act: Act) -> bool {
    let base = format!("/m/webdav-{}", role.name());
    let what = format!("webdav {act:?}");
    let dest = |s: &str| format!("Destination: {}", w.url(&format!("{base}{s}")));
    match act {
        Act::List => {
            let r = curl(
                w,
                role,
                &["-X", "PROPFIND", "-H", "Depth: 1", &w.url("/m/")],
            );
            allowed(&what, role, &r) && r.0 == 207 && r.1.contains("r.txt")
        }
        Act::Read => {
            let r = curl(
                w,
                role,
                &["-X", "PROPFIND", "-H", "Depth: 0", &w.url("/m/r.txt")],
            );
            allowed(&what, role, &r) && r.0 == 207
        }
        Act::Create => allowed(
            &what,
            role,
            &curl(w, role, &["-X", "MKCOL", &w.url(&format!("{base}-new"))]),
        ),
        // A copy over an existing file replaces it.
        Act::Replace => allowed(
            &what,
            role,
            &curl(
                w,
                role,
                &[
                    "-X",
                    "COPY",
                    "-H",
                    &dest("-old.txt"),
                    "-H",
                    "Overwrite: T",
                    &w.url("/m/r.txt"),
                ],
            ),
        ),
        Act::Delete => allowed(
            &what,
            role,
            &curl(w, role, &["-X", "DELETE", &w.url(&format!("{base}-del/"))]),
        ),
        Act::Move => allowed(
            &what,
            role,
            &curl(
                w,
                role,
                &[
                    "-X",
                    "MOVE",
                    "-H",
                    &dest("-moved.txt"),
                    &w.url(&format!("{base}-mv.txt")),
                ],
            ),
        ),
        _ => unreachable!(),
    }
}

/// A tus upload of three bytes: the creation, then its one PATCH.
fn tus(w: &World, role: Role, act: Act) -> bool {
    use base64::Engine as _;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let name = format!("m/tus-{}", role.name());
    let meta = match act {
        Act::Create => format!("path {}", b64(&format!("{name}-new"))),
        Act::Replace => format!(
            "path {},overwrite {}",
            b64(&format!("{name}-old.txt")),
            b64("1")
        ),
        _ => unreachable!(),
    };
    let made = curl(
        w,
        role,
        &[
            "-i",
            "-X",
            "POST",
            "-H",
            "Tus-Resumable: 1.0.0",
            "-H",
            "Upload-Length: 3",
            "-H",
            &format!("Upload-Metadata: {meta}"),
            &w.url("/.ferry/tus/"),
        ],
    );
    if !allowed(&format!("tus {act:?}"), role, &made) {
        return false;
    }
    let location = made
        .1
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("location")
                .then(|| v.trim().to_string())
        })
        .expect("a Location");
    let location = if location.starts_with("http") {
        location
    } else {
        w.url(&location)
    };
    let patched = curl(
        w,
        role,
        &[
            "-X",
            "PATCH",
            "-H",
            "Tus-Resumable: 1.0.0",
            "-H",
            "Upload-Offset: 0",
            "-H",
            "Content-Type: application/offset+octet-stream",
            "--data-binary",
            "new",
            &location,
        ],
    );
    assert_eq!(patched.0, 204, "the upload it was allowed: {}", patched.1);
    true
}

/// The classic client, which presents nothing: anonymous.
fn classic(w: &World, act: Act) -> bool {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/classic_client.py");
    let port = w.port.to_string();
    let got = w.scratch.join("classic-got");
    let body = w.scratch.join("body.txt");
    let args: Vec<&str> = match act {
        Act::Read => vec!["get", "m/r.txt", got.to_str().unwrap()],
        Act::Create => vec!["put", body.to_str().unwrap(), "m/classic-anonymous-new"],
        _ => unreachable!(),
    };
    let out = Command::new("python3")
        .args([script, "127.0.0.1", &port])
        .args(&args)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    if said.contains("\"error\"") {
        assert!(
            REFUSALS.iter().any(|r| said.contains(r)),
            "classic {act:?}: {said}"
        );
        return false;
    }
    assert!(out.status.success(), "classic {act:?}: {said}");
    match act {
        Act::Read => std::fs::read_to_string(&got).unwrap() == "readme",
        _ => said.contains("\"ok\": true"),
    }
}

/// The page's chat socket as `role` (its credentials on the upgrade).
fn websocket(w: &World, role: Role, act: Act) -> bool {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let query = match act {
        Act::ChatAsWriter => "nick=writer&rooms=lobby",
        _ => "rooms=lobby",
    };
    let said = match act {
        Act::ChatAsWriter => format!("websocket-{}-as", role.name()),
        _ => format!("websocket-{}-chat", role.name()),
    };
    let mut req = format!("ws://{}/.ferry/chat?{query}", w.host())
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("Origin", w.url("").parse().unwrap());
    let auth = w.curl_auth(role);
    if let Some(h) = auth.iter().position(|a| a == "-H").map(|i| &auth[i + 1]) {
        let (k, v) = h.split_once(": ").unwrap();
        let k = tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(k.as_bytes()).unwrap();
        req.headers_mut().insert(k, v.parse().unwrap());
    } else if let Some(i) = auth.iter().position(|a| a == "-u") {
        use base64::Engine as _;
        let basic = base64::engine::general_purpose::STANDARD.encode(&auth[i + 1]);
        req.headers_mut()
            .insert("Authorization", format!("Basic {basic}").parse().unwrap());
    }
    // A name an earlier cell held may still be on its way out: asked
    // again a moment later.
    let mut welcomed = None;
    for _ in 0..50 {
        let got = rt.block_on(chat_once(w, role, req.clone(), &said));
        if got.is_some() {
            welcomed = got;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let welcomed = welcomed.expect("the name stayed taken");
    welcomed
        && match act {
            Act::ChatAsWriter => w.heard(&format!("[lobby] <writer> {said}")),
            _ => heard_from(w, role, &said),
        }
}

/// One try at the chat socket: whether it was welcomed (and `said` got
/// through), or `None` while the name asked for is still taken.
async fn chat_once(
    w: &World,
    role: Role,
    req: tokio_tungstenite::tungstenite::handshake::client::Request,
    said: &str,
) -> Option<bool> {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    {
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", w.port))
            .await
            .unwrap();
        let mut ws = match tokio_tungstenite::client_async(req, tcp).await {
            Ok((ws, _)) => ws,
            Err(tokio_tungstenite::tungstenite::Error::Http(res)) => {
                assert!(matches!(res.status().as_u16(), 401 | 403), "{res:?}");
                return Some(false);
            }
            Err(e) => panic!("websocket as {}: {e}", role.name()),
        };
        let first = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("an event");
        let Some(Ok(Message::Text(t))) = first else {
            return Some(false);
        };
        let ev: serde_json::Value = serde_json::from_str(&t).unwrap();
        if ev["kind"] != "welcome" {
            let why = ev["reason"].as_str().unwrap_or_default();
            if why.contains("is taken") {
                return None;
            }
            assert!(REFUSALS.iter().any(|r| why.contains(r)), "{ev}");
            return Some(false);
        }
        ws.send(Message::Text(said.to_string().into()))
            .await
            .unwrap();
        // Until the server has it: its echo to this very socket.
        while let Ok(Some(Ok(m))) = tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
            if let Message::Text(t) = m {
                if t.contains(said) {
                    break;
                }
            }
        }
        // Closed as a page would, so that its name is let go of.
        let _ = ws.close(None).await;
        while let Ok(Some(Ok(_))) = tokio::time::timeout(Duration::from_secs(5), ws.next()).await {}
        Some(true)
    }
}

/// The text chat (nc's door): guests only.
fn text(w: &World, act: Act) -> bool {
    let mut s = TcpStream::connect(("127.0.0.1", w.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let said = match act {
        Act::ChatAsWriter => {
            s.write_all(b"/nick writer\n").unwrap();
            let mut rd = BufReader::new(s.try_clone().unwrap());
            for _ in 0..30 {
                let mut line = String::new();
                if rd.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                if line.contains("belongs to an account") {
                    return false;
                }
                if line.contains("now known as writer") || line.contains("you are writer") {
                    break;
                }
            }
            "text-anonymous-as"
        }
        _ => "text-anonymous-chat",
    };
    s.write_all(format!("{said}\n").as_bytes()).unwrap();
    let heard = match act {
        Act::ChatAsWriter => w.heard(&format!("[lobby] <writer> {said}")),
        _ => heard_from(w, Role::Anonymous, said),
    };
    let _ = s.write_all(b"/quit\n");
    heard
}

/// A guest in the lobby who keeps every line it hears.
pub(crate) fn listen_in_lobby(w: &World) {
    let s = TcpStream::connect(("127.0.0.1", w.port)).unwrap();
    let heard = w.heard.clone();
    let ready = std::sync::Arc::new(std::sync::Barrier::new(2));
    let go = ready.clone();
    std::thread::spawn(move || {
        let mut rd = BufReader::new(s);
        let mut first = true;
        loop {
            let mut line = String::new();
            if rd.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if first {
                go.wait();
                first = false;
            }
            heard
                .lock()
                .unwrap()
                .push(line.trim_end_matches(['\r', '\n']).to_string());
        }
    });
    ready.wait();
}
