//! The rights matrix: every door × every role × every action, through the
//! real binary and real clients (the CLI, curl, a WebSocket, a plain TCP
//! line client, the classic Python client). Each cell says allowed or
//! refused as the roles' rights say, and the disk agrees: what was refused
//! wrote, replaced, removed and moved nothing.
//!
//! Everything happens in `/m`. The server's flags allow everything
//! (`--allow-all --allow-exec`), so the rights decide:
//!
//! | role        | rights                         | exec |
//! |-------------|--------------------------------|------|
//! | anonymous   | `/pub:read` only               | no   |
//! | reader      | read everywhere (no `rights`)  | no   |
//! | dropper     | `/m:upload`                    | no   |
//! | writer      | `/m:write`                     | no   |
//! | boss        | `/:admin`                      | yes  |
//! | token       | the server's token             | yes  |
//! | link        | `ferry share HOST:/m`          | no   |
//! | uplink      | `ferry share HOST:/m --upload` | no   |
//! | expired     | a link run out                 | no   |
//! | revoked     | a link revoked                 | no   |
//!
//! A link is a URL for browsers: the native door is shown its token as
//! `FERRY_TOKEN` and must refuse it. The classic door and the text chat
//! carry no credentials at all, so they are anonymous only.

mod doors;
mod traversal;

use std::collections::BTreeMap;
use std::path::Path;

use common::{run_cli, spawn_bin_server};

#[path = "../common/mod.rs"]
mod common;

const TOKEN: &str = "matrix-token-0123456789abcdef";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Role {
    Anonymous,
    Reader,
    Dropper,
    Writer,
    Boss,
    Token,
    Link,
    UpLink,
    Expired,
    Revoked,
}

const ROLES: [Role; 10] = [
    Role::Anonymous,
    Role::Reader,
    Role::Dropper,
    Role::Writer,
    Role::Boss,
    Role::Token,
    Role::Link,
    Role::UpLink,
    Role::Expired,
    Role::Revoked,
];

impl Role {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Role::Anonymous => "anonymous",
            Role::Reader => "reader",
            Role::Dropper => "dropper",
            Role::Writer => "writer",
            Role::Boss => "boss",
            Role::Token => "token",
            Role::Link => "link",
            Role::UpLink => "uplink",
            Role::Expired => "expired",
            Role::Revoked => "revoked",
        }
    }

    /// An account's name, for the roles that are accounts.
    pub(crate) fn account(self) -> Option<&'static str> {
        match self {
            Role::Reader | Role::Dropper | Role::Writer | Role::Boss => Some(self.name()),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Act {
    List,
    Read,
    Create,
    Replace,
    Delete,
    Move,
    Exec,
    Chat,
    /// Chat under the name of the account `writer`.
    ChatAsWriter,
}

/// What each role may do in `/m` through `door`.
fn expected(door: &str, role: Role, act: Act) -> bool {
    use Act::*;
    use Role::*;
    let link = matches!(role, Link | UpLink | Expired | Revoked);
    if link && matches!(door, "native" | "exec") {
        // A link's token is no login.
        return false;
    }
    match act {
        // Chat is open to anyone; an account's name is its own.
        Chat => true,
        ChatAsWriter => role == Writer,
        Exec => matches!(role, Boss | Token),
        List | Read => matches!(role, Reader | Dropper | Writer | Boss | Token | Link),
        Create => matches!(role, Dropper | Writer | Boss | Token | UpLink),
        Replace => matches!(role, Writer | Boss | Token),
        Delete | Move => matches!(role, Boss | Token),
    }
}

/// The server and how each role presents itself.
pub(crate) struct World {
    pub(crate) port: u16,
    pub(crate) links: BTreeMap<Role, String>,
    pub(crate) scratch: std::path::PathBuf,
    /// Every chat line seen by a guest listening in the lobby.
    pub(crate) heard: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl World {
    pub(crate) fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub(crate) fn url(&self, p: &str) -> String {
        format!("http://127.0.0.1:{}{p}", self.port)
    }

    /// The environment the CLI is given for `role`.
    pub(crate) fn env(&self, role: Role) -> Vec<(&'static str, String)> {
        match role {
            Role::Anonymous => vec![],
            Role::Token => vec![("FERRY_TOKEN", TOKEN.into())],
            _ => match role.account() {
                Some(a) => vec![
                    ("FERRY_USER", a.into()),
                    ("FERRY_PASSWORD", format!("{a}-password")),
                ],
                None => vec![("FERRY_TOKEN", self.links[&role].clone())],
            },
        }
    }

    /// The curl arguments that present `role` over HTTP.
    pub(crate) fn curl_auth(&self, role: Role) -> Vec<String> {
        match role {
            Role::Anonymous => vec![],
            Role::Token => vec!["-H".into(), format!("Authorization: Bearer {TOKEN}")],
            _ => match role.account() {
                Some(a) => vec!["-u".into(), format!("{a}:{a}-password")],
                None => vec![
                    "-H".into(),
                    format!("Cookie: ferry_share={}", self.links[&role]),
                ],
            },
        }
    }

    /// Whether the lobby listener heard `line` (waiting a little for it).
    pub(crate) fn heard(&self, line: &str) -> bool {
        for _ in 0..50 {
            if self.heard.lock().unwrap().iter().any(|l| l == line) {
                return true;
            }
            std::thread::sleep(std::time::Duration::from_millis(40));
        }
        false
    }
}

/// The files each cell works on: `m/DOOR-ROLE-old.txt` to replace,
/// `-del` to delete (a folder with a file in it, for WebDAV), `-mv.txt` to
/// move; `-new` is what a create makes.
fn plant(m: &Path, door: &str, role: Role) {
    let base = format!("{door}-{}", role.name());
    std::fs::write(m.join(format!("{base}-old.txt")), "old").unwrap();
    std::fs::write(m.join(format!("{base}-mv.txt")), "mv").unwrap();
    if door == "webdav" {
        std::fs::create_dir(m.join(format!("{base}-del"))).unwrap();
        std::fs::write(m.join(format!("{base}-del/in.txt")), "in").unwrap();
    } else {
        std::fs::write(m.join(format!("{base}-del")), "del").unwrap();
    }
}

/// What the disk says an action did, for the actions that change it.
fn disk_says(m: &Path, door: &str, role: Role, act: Act) -> Option<bool> {
    let base = format!("{door}-{}", role.name());
    let at = |s: &str| m.join(format!("{base}{s}"));
    match act {
        Act::Create => Some(at("-new").exists()),
        Act::Replace => Some(std::fs::read_to_string(at("-old.txt")).unwrap() != "old"),
        Act::Delete => Some(!at("-del").exists()),
        Act::Move => {
            let (from, to) = (at("-mv.txt").exists(), at("-moved.txt").exists());
            assert!(from != to, "{base}: a move left {from} {to}");
            Some(to)
        }
        _ => None,
    }
}

const DOORS: [(&str, &[Act]); 8] = [
    (
        "native",
        &[
            Act::List,
            Act::Read,
            Act::Create,
            Act::Replace,
            Act::Delete,
            Act::Move,
            Act::Chat,
            Act::ChatAsWriter,
        ],
    ),
    (
        "http",
        &[Act::List, Act::Read, Act::Create, Act::Replace, Act::Delete],
    ),
    (
        "webdav",
        &[
            Act::List,
            Act::Read,
            Act::Create,
            Act::Replace,
            Act::Delete,
            Act::Move,
        ],
    ),
    ("tus", &[Act::Create, Act::Replace]),
    ("classic", &[Act::Read, Act::Create]),
    ("websocket", &[Act::Chat, Act::ChatAsWriter]),
    ("text", &[Act::Chat, Act::ChatAsWriter]),
    ("exec", &[Act::Exec]),
];

/// The cells tried. The classic door and the text chat carry no
/// credentials: anonymous only. A link's token shown to the native door
/// is refused at the login, before any action, so one action there shows
/// it (each refusal also slows the next login from the address).
fn tried(door: &str, role: Role, act: Act) -> bool {
    let link = matches!(
        role,
        Role::Link | Role::UpLink | Role::Expired | Role::Revoked
    );
    match door {
        "classic" | "text" => role == Role::Anonymous,
        "native" if link => act == Act::List,
        _ => true,
    }
}

#[test]
fn every_door_gives_every_role_exactly_its_rights() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    let m = r.join("m");
    std::fs::create_dir_all(&m).unwrap();
    std::fs::create_dir_all(r.join("pub")).unwrap();
    std::fs::write(m.join("r.txt"), "readme").unwrap();
    for (door, _) in DOORS {
        for role in ROLES {
            plant(&m, door, role);
        }
    }
    let etc = tempfile::tempdir().unwrap();
    let cfg = etc.path().join("ferry.toml");
    let mut text = String::from("[anonymous]\nrights = [\"/pub:read\"]\n");
    for (name, rights, exec) in [
        ("reader", None, false),
        ("dropper", Some("/m:upload"), false),
        ("writer", Some("/m:write"), false),
        ("boss", Some("/:admin"), true),
    ] {
        text.push_str(&format!(
            "\n[users.{name}]\npassword_hash = \"{}\"\nexec = {exec}\n",
            common::passwd_hash(&format!("{name}-password"))
        ));
        if let Some(r) = rights {
            text.push_str(&format!("rights = [\"{r}\"]\n"));
        }
    }
    std::fs::write(&cfg, text).unwrap();
    let srv = spawn_bin_server(
        r,
        &[
            "--allow-all",
            "--allow-exec",
            "--config",
            cfg.to_str().unwrap(),
        ],
        &[("FERRY_TOKEN", TOKEN)],
    );
    let mut world = World {
        port: srv.port,
        links: BTreeMap::new(),
        scratch: etc.path().to_path_buf(),
        heard: Default::default(),
    };
    world.links = make_links(&world);
    doors::listen_in_lobby(&world);

    let mut wrong = Vec::new();
    let mut cells = 0;
    for (door, acts) in DOORS {
        let started = std::time::Instant::now();
        for role in ROLES {
            for &act in acts {
                if !tried(door, role, act) {
                    continue;
                }
                let said = doors::try_it(&world, door, role, act);
                cells += 1;
                if let Some(disk) = disk_says(&m, door, role, act) {
                    if disk != said {
                        wrong.push(format!(
                            "{door} × {} × {act:?}: the door said {said}, the disk {disk}",
                            role.name()
                        ));
                    }
                }
                if said != expected(door, role, act) {
                    wrong.push(format!(
                        "{door} × {} × {act:?}: {} where {} was expected",
                        role.name(),
                        if said { "allowed" } else { "refused" },
                        if expected(door, role, act) {
                            "allowed"
                        } else {
                            "refused"
                        },
                    ));
                }
            }
        }
        eprintln!("{door}: {:?}", started.elapsed());
    }
    assert!(
        wrong.is_empty(),
        "{} of {cells} cells:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    assert!(cells > 200, "{cells}");
    assert!(common::partial_files(r).is_empty());
    // Nothing landed outside /m either.
    let top: Vec<_> = std::fs::read_dir(r)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(top.len(), 2, "{top:?}");
}

/// The four links, made by the token holder: a read link and an upload
/// link to `/m`, one run out and one revoked.
fn make_links(w: &World) -> BTreeMap<Role, String> {
    let env = [("FERRY_TOKEN", TOKEN)];
    let share = |extra: &[&str]| -> String {
        let m = format!("{}:/m", w.host());
        let mut args = vec!["share", m.as_str()];
        args.extend_from_slice(extra);
        let (code, out, err) = run_cli(&args, &env);
        assert_eq!(code, 0, "{err}");
        let link = out.trim().to_string();
        link.rsplit('/').next().unwrap().to_string()
    };
    let mut links = BTreeMap::new();
    links.insert(Role::Link, share(&["--expires", "1h"]));
    links.insert(Role::UpLink, share(&["--upload"]));
    links.insert(Role::Expired, share(&["--expires", "1s"]));
    let revoked = share(&[]);
    use base64::Engine as _;
    let payload = revoked.split('.').next().unwrap();
    let grant: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    let id = grant["id"].as_str().unwrap();
    let (code, _, err) = run_cli(&["share", &w.host(), "--revoke", id], &env);
    assert_eq!(code, 0, "{err}");
    links.insert(Role::Revoked, revoked);
    std::thread::sleep(std::time::Duration::from_millis(2100));
    links
}
