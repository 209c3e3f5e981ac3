use super::*;
use crate::access::{Action, Who};
use crate::files::RelPath;

#[test]
fn flags_beat_file_and_file_beats_defaults() {
    let file = ServeOptions::parse_file(
        "name = \"from-file\"\nmax_per_ip = 3\nallow_upload = true\ntoken = \"abcdefgh1\"",
    )
    .unwrap();
    let opts = ServeOptions {
        name: Some("from-flag".into()),
        ..Default::default()
    };
    let c = ServeConfig::merge(".".into(), opts.over(file), None).unwrap();
    assert_eq!(c.name, "from-flag");
    assert_eq!(c.limits.max_per_ip, 3);
    assert_eq!(c.limits.max_connections, 4096);
    assert!(c.granted.upload && !c.granted.delete);
    assert!(c.anonymous.read && !c.anonymous.upload);
    assert!(c.token.as_ref().unwrap().matches("abcdefgh1"));
}

#[test]
fn env_token_beats_file_token_and_bad_settings_fail() {
    let file = ServeOptions::parse_file("token = \"file-token-1\"").unwrap();
    let c = ServeConfig::merge(".".into(), file, Some(Secret::new("env-token-1"))).unwrap();
    assert!(c.token.unwrap().matches("env-token-1"));
    assert!(ServeOptions::parse_file("bogus = 1").is_err());
    assert!(ServeOptions::parse_file("config = \"other.toml\"").is_err());
    let short = ServeOptions::parse_file("token = \"short\"").unwrap();
    assert!(ServeConfig::merge(".".into(), short, None).is_err());
    let opts = ServeOptions {
        private: Some(true),
        ..Default::default()
    };
    assert!(ServeConfig::merge(".".into(), opts, None).is_err());
}

#[test]
fn anonymous_rights_without_a_token_or_accounts_are_refused_not_ignored() {
    let file = |extra: &str| {
        ServeOptions::parse_file(&format!("[anonymous]\nrights = [\"/pub:read\"]\n{extra}"))
            .unwrap()
    };
    let e = ServeConfig::merge(".".into(), file(""), None).unwrap_err();
    assert!(
        e.to_string().contains("[anonymous] rights need a token"),
        "{e}"
    );
    let c = ServeConfig::merge(".".into(), file(""), Some(Secret::new("env-token-1"))).unwrap();
    let pub_ = RelPath::parse("pub").unwrap();
    let other = RelPath::parse("other").unwrap();
    let policy = c.policy();
    assert!(policy.check(Who::Anonymous, Action::Read, &pub_).is_ok());
    assert!(policy.check(Who::Anonymous, Action::Read, &other).is_err());
}

#[test]
fn tls_from_the_file_and_what_implies_it() {
    let merge = |text: &str, opts: &ServeOptions| {
        let file = ServeOptions::parse_file(text).unwrap();
        ServeConfig::merge(".".into(), opts.clone().over(file), None)
    };
    let none = ServeOptions::default();
    assert!(merge("", &none).unwrap().tls.is_none());
    let t = merge("tls = true", &none).unwrap().tls.unwrap();
    assert!(t.files.is_none() && !t.required);
    assert_eq!(t.handshake_timeout, Duration::from_secs(10));
    let t = merge("tls_required = true\nio_timeout = 3", &none)
        .unwrap()
        .tls
        .unwrap();
    assert!(t.required);
    assert_eq!(t.handshake_timeout, Duration::from_secs(3));
    let t = merge("tls_cert = \"c.pem\"\ntls_key = \"k.pem\"", &none)
        .unwrap()
        .tls
        .unwrap();
    assert_eq!(t.files, Some(("c.pem".into(), "k.pem".into())));
    let err = merge("tls_cert = \"c.pem\"", &none).unwrap_err();
    assert!(err.to_string().contains("go together"), "{err}");
    let flag = ServeOptions {
        tls_required: Some(true),
        ..Default::default()
    };
    assert!(merge("tls = false", &flag).unwrap().tls.unwrap().required);
}

#[test]
fn default_listen_is_both_families() {
    let c = ServeConfig::for_root(Path::new("."));
    assert!(c.default_listen);
    assert_eq!(c.listen.len(), 2);
    assert!(c.listen.iter().all(|a| a.port() == DEFAULT_PORT));
}

/// Every flag has its `FERRY_*` variable and its file key, because both
/// come from the one field: a new option cannot miss either.
#[test]
fn every_flag_has_its_variable_and_its_file_key() {
    use clap::Args;
    let cmd = ServeOptions::augment_args(clap::Command::new("serve"));
    // serde names every key it knows when it meets one it does not.
    let err = ServeOptions::parse_file("not_an_option = 1")
        .unwrap_err()
        .to_string();
    let mut flags = 0;
    for arg in cmd.get_arguments() {
        let id = arg.get_id().as_str();
        if id == "config" || arg.get_long().is_none() {
            continue;
        }
        flags += 1;
        assert_eq!(arg.get_long(), Some(id.replace('_', "-").as_str()));
        let env = format!("FERRY_{}", id.to_uppercase());
        assert_eq!(
            arg.get_env().and_then(|e| e.to_str()),
            Some(env.as_str()),
            "{id}"
        );
        assert!(
            err.contains(&format!("`{id}`")),
            "{id} is no file key: {err}"
        );
    }
    assert!(flags > 40, "{flags}");
    for key in ["root", "token", "token_file"] {
        assert!(err.contains(&format!("`{key}`")), "{key}: {err}");
    }
    let file = ServeOptions::parse_file("no_chat = true\nlisten = [\"127.0.0.1:9\"]").unwrap();
    let c = ServeConfig::merge(".".into(), file, None).unwrap();
    assert!(!c.chat.enabled && !c.granted.chat);
    assert_eq!(c.listen.len(), 1);
    assert!(!c.default_listen);
}

/// Sizes and ports in the file read as their flags do, as text or bare
/// numbers.
#[test]
fn the_file_takes_sizes_and_ports_as_flags_do() {
    let c =
        |text: &str| ServeConfig::merge(".".into(), ServeOptions::parse_file(text).unwrap(), None);
    let s = c("max_upload = \"1G\"\nexec_output_max = 4096\nlisten = [7171]").unwrap();
    assert_eq!(s.max_upload, Some(1 << 30));
    assert_eq!(s.exec.max_output, 4096);
    assert_eq!(s.listen.len(), 2);
    assert!(s.default_listen && s.listen.iter().all(|a| a.port() == 7171));
    let s = c("port = 7172").unwrap();
    assert!(s.listen.iter().all(|a| a.port() == 7172));
    assert!(c("port = 7172\nlisten = [\"127.0.0.1:1\"]").is_err());
    for bad in [
        "max_upload = \"12X\"",
        "max_upload = -1",
        "listen = [70000]",
    ] {
        assert!(ServeOptions::parse_file(bad).is_err(), "{bad}");
    }
}

/// A switch given off (`--allow-upload=false`, `FERRY_ALLOW_UPLOAD=0`)
/// wins over a file that turns it on, as every other flag does; left out,
/// the file decides.
#[test]
fn a_switch_given_off_wins_over_the_file() {
    use clap::{Args, FromArgMatches};
    let file =
        || ServeOptions::parse_file("allow_upload = true\nno_chat = true\nport = 9").unwrap();
    let flags = |argv: &[&str]| {
        let cmd = ServeOptions::augment_args(clap::Command::new("serve").no_binary_name(true));
        ServeOptions::from_arg_matches(&cmd.try_get_matches_from(argv).unwrap()).unwrap()
    };
    let c = ServeConfig::merge(
        ".".into(),
        flags(&["--allow-upload=false", "--no-chat=0"]).over(file()),
        None,
    )
    .unwrap();
    assert!(!c.granted.upload && c.chat.enabled);
    let c = ServeConfig::merge(".".into(), flags(&[]).over(file()), None).unwrap();
    assert!(c.granted.upload && !c.chat.enabled);
    let c = ServeConfig::merge(".".into(), flags(&["--allow-delete"]), None).unwrap();
    assert!(c.granted.delete && !c.granted.upload);
    let zero = ServeOptions::parse_file("port = 0").unwrap();
    assert!(ServeConfig::merge(".".into(), zero, None).is_err());
}

/// A rate that is not a number, or not finite, is refused at start: an
/// infinite rate made the pacing's wait `NaN`, which panics on its way to
/// a `Duration`.
#[test]
fn rates_must_be_finite_numbers_above_zero() {
    type Set = fn(&mut ServeOptions, f64);
    let setters: [(&str, Set); 3] = [
        ("chat_rate", |o, v| o.chat_rate = Some(v)),
        ("udp_rate", |o, v| o.udp_rate = Some(v)),
        ("udp_burst", |o, v| o.udp_burst = Some(v)),
    ];
    for bad in [f64::NAN, f64::INFINITY, 0.0, -1.0] {
        for (name, set) in setters {
            let mut o = ServeOptions::default();
            set(&mut o, bad);
            assert!(
                ServeConfig::merge(".".into(), o, None).is_err(),
                "{name} {bad}"
            );
        }
    }
    let mut fine = ServeOptions::default();
    for (value, (_, set)) in [0.5, 1e6, 1.0].into_iter().zip(setters) {
        set(&mut fine, value);
    }
    assert!(ServeConfig::merge(".".into(), fine, None).is_ok());
}
