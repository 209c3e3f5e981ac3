use super::*;

#[test]
fn flags_beat_file_and_file_beats_defaults() {
    let file: FileConfig = toml::from_str(
        "name = \"from-file\"\nmax_per_ip = 3\nallow_upload = true\ntoken = \"abcdefgh1\"",
    )
    .unwrap();
    let opts = ServeOptions {
        name: Some("from-flag".into()),
        ..Default::default()
    };
    let c = ServeConfig::merge(".".into(), &opts, file, None).unwrap();
    assert_eq!(c.name, "from-flag");
    assert_eq!(c.limits.max_per_ip, 3);
    assert_eq!(c.limits.max_connections, 4096);
    assert!(c.granted.upload && !c.granted.delete);
    assert!(c.anonymous.read && !c.anonymous.upload);
    assert!(c.token.as_ref().unwrap().matches("abcdefgh1"));
}

#[test]
fn env_token_beats_file_token_and_bad_settings_fail() {
    let file: FileConfig = toml::from_str("token = \"file-token-1\"").unwrap();
    let c = ServeConfig::merge(
        ".".into(),
        &ServeOptions::default(),
        file,
        Some(Secret::new("env-token-1")),
    )
    .unwrap();
    assert!(c.token.unwrap().matches("env-token-1"));
    assert!(toml::from_str::<FileConfig>("bogus = 1").is_err());
    let short: FileConfig = toml::from_str("token = \"short\"").unwrap();
    assert!(ServeConfig::merge(".".into(), &ServeOptions::default(), short, None).is_err());
    let opts = ServeOptions {
        private: true,
        ..Default::default()
    };
    assert!(ServeConfig::merge(".".into(), &opts, FileConfig::default(), None).is_err());
}

#[test]
fn tls_from_the_file_and_what_implies_it() {
    let merge = |text: &str, opts: &ServeOptions| {
        let file: FileConfig = toml::from_str(text).unwrap();
        ServeConfig::merge(".".into(), opts, file, None)
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
        tls_required: true,
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
