//! `ferry shell` and `ferry exec -t` on a real terminal: tmux runs the
//! client, the test types into it and reads the screen, as a person
//! would. Prompt, state kept between lines, Ctrl-C through the remote
//! terminal, window size followed, and the exit status.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{ferry_bin, spawn_bin_server};

const TOKEN: &str = "terminal-test-token-0123456789";

/// A tmux server of the test's own (its own socket), one window running
/// `command`, then `EXIT=<status>` once it ends.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn start(command: &str) -> Tmux {
        let socket = format!("ferry-test-{}-{}", std::process::id(), rand_suffix());
        let script = format!("{command}; echo EXIT=$?; sleep 60");
        let ok = Command::new("tmux")
            .args([
                "-L",
                &socket,
                "-f",
                "/dev/null",
                "new-session",
                "-d",
                "-x",
                "100",
                "-y",
                "30",
            ])
            .arg(script)
            .env("FERRY_TOKEN", TOKEN)
            .status()
            .unwrap();
        assert!(ok.success());
        Tmux { socket }
    }

    fn tmux(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Types `keys` (tmux key names: "Enter", "C-c", or text).
    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "0"];
        args.extend_from_slice(keys);
        self.tmux(&args);
    }

    fn screen(&self) -> String {
        self.tmux(&["capture-pane", "-p", "-t", "0", "-S", "-100"])
    }

    /// Waits up to 20 s for `want` on the screen (whose lines tmux gives
    /// without trailing spaces); returns the screen.
    fn wait_for(&self, want: &str) -> String {
        let end = Instant::now() + Duration::from_secs(20);
        loop {
            let screen = self.screen();
            if screen.contains(want) {
                return screen;
            }
            assert!(
                Instant::now() < end,
                "never saw {want:?}; the screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .status();
    }
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64
}

fn exec_server(root: &std::path::Path) -> common::BinServer {
    spawn_bin_server(root, &["--allow-exec"], &[("FERRY_TOKEN", TOKEN)])
}

#[test]
fn shell_is_one_session_on_a_terminal() {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir(root.path().join("sub")).unwrap();
    let srv = exec_server(root.path());
    let t = Tmux::start(&format!("{} shell 127.0.0.1:{}", ferry_bin(), srv.port));
    // The server's shell answers at its prompt.
    t.keys(&["PS1='remote> '; echo ready-$((6*7))", "Enter"]);
    t.wait_for("ready-42");
    t.keys(&["Enter"]);
    t.wait_for("remote>");
    t.keys(&["false; echo \"st=$?\"", "Enter"]);
    t.wait_for("st=1");
    t.keys(&["X=42; cd sub", "Enter"]);
    t.keys(&["echo \"x=$X in ${PWD##*/}\"", "Enter"]);
    t.wait_for("x=42 in sub");
    // Ctrl-C goes through the remote terminal to what runs there, and the
    // shell goes on.
    t.keys(&["sleep 100", "Enter"]);
    std::thread::sleep(Duration::from_millis(500));
    t.keys(&["C-c"]);
    t.keys(&["echo \"after=$?\"", "Enter"]);
    t.wait_for("after=130");
    // The window's size is followed.
    t.tmux(&["resize-window", "-t", "0", "-x", "77", "-y", "20"]);
    std::thread::sleep(Duration::from_millis(500));
    t.keys(&["echo \"cols=$(tput cols)\"", "Enter"]);
    t.wait_for("cols=77");
    // Colours: the kind of terminal (tmux's own) reaches the server.
    t.keys(&["echo \"term=$TERM\"", "Enter"]);
    t.wait_for("term=tmux-256color");
    t.keys(&["exit 3", "Enter"]);
    t.wait_for("EXIT=3");
}

#[test]
fn exec_t_runs_an_interactive_program() {
    let root = tempfile::tempdir().unwrap();
    let srv = exec_server(root.path());
    let t = Tmux::start(&format!(
        "{} exec -t 127.0.0.1:{} sh -c 'test -t 0 && echo on-a-tty; printf \"name? \"; read -r n; echo \"hello $n\"; exit 5'",
        ferry_bin(),
        srv.port
    ));
    t.wait_for("name?");
    t.keys(&["ana", "Enter"]);
    let screen = t.wait_for("EXIT=5");
    assert!(
        screen.contains("on-a-tty") && screen.contains("hello ana"),
        "{screen}"
    );

    // Ctrl-C reaches the command through the terminal: 130.
    let t = Tmux::start(&format!(
        "{} exec -t 127.0.0.1:{} sleep 100",
        ferry_bin(),
        srv.port
    ));
    std::thread::sleep(Duration::from_secs(1));
    t.keys(&["C-c"]);
    t.wait_for("EXIT=130");
}

#[test]
fn shell_without_the_right_says_so_once() {
    let root = tempfile::tempdir().unwrap();
    let srv = spawn_bin_server(root.path(), &[], &[("FERRY_TOKEN", TOKEN)]);
    let t = Tmux::start(&format!("{} shell 127.0.0.1:{}", ferry_bin(), srv.port));
    let screen = t.wait_for("EXIT=255");
    let said = screen.lines().filter(|l| l.starts_with("ferry:")).count();
    assert_eq!(said, 1, "{screen}");
    assert!(
        screen.contains("--allow-exec") || screen.contains("exec"),
        "{screen}"
    );
}

/// An interactive shell gives each background job a process group of its
/// own; when the session ends, they end with it.
#[test]
fn background_jobs_of_a_shell_session_end_with_it() {
    let root = tempfile::tempdir().unwrap();
    let srv = exec_server(root.path());
    let t = Tmux::start(&format!("{} shell 127.0.0.1:{}", ferry_bin(), srv.port));
    t.keys(&[
        "sleep 4242 & sleep 4243 | cat & echo started-$((2+3))",
        "Enter",
    ]);
    t.wait_for("started-5");
    let running = |what: &str| {
        Command::new("pgrep")
            .args(["-f", what])
            .status()
            .unwrap()
            .success()
    };
    // The shell echoes before its background children have become
    // `sleep` (each is the shell until its exec): give them a moment.
    let up = Instant::now() + Duration::from_secs(10);
    while !(running("sleep 4242") && running("sleep 4243")) && Instant::now() < up {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(running("sleep 4242") && running("sleep 4243"));
    t.keys(&["exit", "Enter"]);
    t.wait_for("EXIT=");
    let end = Instant::now() + Duration::from_secs(15);
    while (running("sleep 4242") || running("sleep 4243")) && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        !running("sleep 4242") && !running("sleep 4243"),
        "a job outlived its session"
    );
}

#[test]
fn serve_shows_a_qr_code_of_its_url_on_a_terminal_only() {
    let root = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let t = Tmux::start(&format!(
        "{} serve {} --listen 127.0.0.1:{port} --no-discovery --state-dir {}",
        ferry_bin(),
        root.path().display(),
        state.path().display()
    ));
    let screen = t.wait_for("in a browser");
    let screen = if screen.contains('▀') || screen.contains('▄') {
        screen
    } else {
        t.wait_for("▀")
    };
    // A square of half blocks: as many lines as a 25-module code takes.
    let rows = screen
        .lines()
        .filter(|l| l.contains('█') || l.contains('▀') || l.contains('▄'))
        .count();
    assert!(rows >= 12, "{screen}");
    t.keys(&["C-c"]);
    t.wait_for("EXIT=");
    // Without a terminal, nothing of it.
    let mut s = spawn_bin_server(root.path(), &[], &[]);
    let _ = Command::new("kill")
        .args(["-TERM", &s.child.id().to_string()])
        .status();
    let _ = s.child.wait();
    let err = s.stderr.join().unwrap();
    assert!(!err.contains('▀') && !err.contains('▄'), "{err}");
}
