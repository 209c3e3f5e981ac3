use super::*;

fn drain(m: &mut Events) -> Vec<Event> {
    let mut out = Vec::new();
    while let Some(e) = m.try_recv() {
        out.push(e.event().clone());
    }
    out
}

fn texts(evs: &[Event]) -> Vec<String> {
    evs.iter()
        .filter_map(|e| match e {
            Event::Message { text, .. } => Some(text.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn rooms_nicks_and_fan_out() {
    let hub = Hub::new("srv", ChatLimits::default(), None);
    let (mut a, mut ae) = hub.connect(Some("alice"), &[]).unwrap();
    let (mut b, mut be) = hub.connect(Some("bob"), &["ops".into()]).unwrap();
    assert!(hub.connect(Some("ALICE"), &[]).is_err(), "case-insensitive");
    drain(&mut ae);
    drain(&mut be);
    a.line("hello lobby");
    b.line("hello ops");
    assert_eq!(texts(&drain(&mut ae)), ["hello lobby"]);
    assert_eq!(texts(&drain(&mut be)), ["hello ops"]);
    b.line("/join lobby");
    a.line("both");
    assert_eq!(texts(&drain(&mut be)), ["both"]);
    assert!(matches!(
        drain(&mut ae).as_slice(),
        [Event::Joined { .. }, Event::Message { .. }]
    ));
    b.line("/nick alice");
    assert!(matches!(drain(&mut be).as_slice(), [Event::Error { .. }]));
    b.line("/nick bobby");
    assert!(matches!(drain(&mut ae).as_slice(), [Event::Nick { .. }]));
    assert!(matches!(drain(&mut be).as_slice(), [Event::Nick { .. }]));
    a.line("/msg BOBBY psst");
    assert!(matches!(drain(&mut be).as_slice(), [Event::Private { .. }]));
    // The sender sees its own private message echoed.
    assert!(matches!(drain(&mut ae).as_slice(), [Event::Private { .. }]));
    drop(b);
    assert!(matches!(drain(&mut ae).as_slice(), [Event::Left { .. }]));
    assert_eq!(hub.clients(), 1);
}

#[test]
fn a_large_room_does_not_announce_every_join_and_leave() {
    let hub = Hub::new("srv", ChatLimits::default(), None);
    let (_w, mut we) = hub.connect(Some("watcher"), &[]).unwrap();
    let mut crowd = Vec::new();
    for i in 0..PRESENCE_MAX {
        crowd.push(hub.connect(Some(&format!("n{i}")), &[]).unwrap());
    }
    let joins = drain(&mut we)
        .iter()
        .filter(|e| matches!(e, Event::Joined { .. }))
        .count();
    // Each arrival was announced while the room was small.
    assert_eq!(joins, PRESENCE_MAX);
    let (_late, mut le) = hub.connect(Some("late"), &[]).unwrap();
    assert!(
        drain(&mut we).is_empty(),
        "a join in a large room was announced"
    );
    // The one who joined is still told.
    assert!(
        drain(&mut le)
            .iter()
            .any(|e| matches!(e, Event::Joined { .. }))
    );
    drop(crowd.pop());
    assert!(
        drain(&mut we).is_empty(),
        "a leave in a large room was announced"
    );
    assert_eq!(hub.clients(), PRESENCE_MAX + 1);
}

#[test]
fn a_full_queue_drops_only_that_client() {
    let limits = ChatLimits {
        queue_bytes: 4096,
        ..ChatLimits::default()
    };
    let hub = Hub::new("srv", limits, None);
    let (mut talker, mut te) = hub.connect(Some("talker"), &[]).unwrap();
    let (stuck, _se) = hub.connect(Some("stuck"), &[]).unwrap();
    for i in 0..100 {
        talker.line(&format!("m{i}"));
        drain(&mut te);
    }
    assert!(stuck.dropped.is_cancelled());
    assert!(stuck.drop_reason().contains("stopped reading"));
    assert!(!talker.dropped.is_cancelled());
}

#[test]
fn oversized_and_bad_names_are_refused() {
    let hub = Hub::new("srv", ChatLimits::default(), None);
    let (mut a, mut ae) = hub.connect(None, &[]).unwrap();
    drain(&mut ae);
    a.line(&"x".repeat(2001));
    assert!(matches!(drain(&mut ae).as_slice(), [Event::Error { .. }]));
    for bad in ["/nick 9lives", "/nick a\u{1b}b", "/join a/b", "/nick -x"] {
        a.line(bad);
        assert!(
            matches!(drain(&mut ae).as_slice(), [Event::Error { .. }]),
            "{bad}"
        );
    }
}

#[test]
fn account_names_are_their_accounts_alone() {
    let hub = Hub::new("srv", ChatLimits::default(), None);
    hub.reserve(["Alice".to_string(), "guest1".to_string()]);
    // A guest cannot take an account's name, in any case, nor change to it.
    assert!(hub.connect(Some("alice"), &[]).is_err());
    assert!(hub.connect(Some("ALICE"), &[]).is_err());
    let (guest, _ge) = hub.connect(None, &[]).unwrap();
    assert_ne!(
        guest.nick().to_lowercase(),
        "guest1",
        "a reserved guest name is skipped"
    );
    assert!(hub.nick(guest.id, "alice").is_err());
    // Another account cannot either; alice can, and gets it by default.
    assert!(
        hub.connect_as(Some("alice"), &[], None, Some("bob"))
            .is_err()
    );
    let (a, _ae) = hub.connect_as(None, &[], None, Some("alice")).unwrap();
    assert_eq!(a.nick(), "alice");
    // Unreserved names stay free for anyone.
    assert!(hub.connect(Some("carol"), &[]).is_ok());
}

#[test]
fn admin_and_link_are_nobodys_nickname() {
    let hub = Hub::new("srv", ChatLimits::default(), None);
    for n in ["admin", "Link"] {
        assert!(hub.connect(Some(n), &[]).is_err(), "{n}");
    }
    let (mut a, mut ae) = hub.connect(Some("alice"), &[]).unwrap();
    drain(&mut ae);
    a.line("/nick ADMIN");
    assert!(matches!(drain(&mut ae).as_slice(), [Event::Error { .. }]));
    a.line("/nick administrator");
    assert!(matches!(drain(&mut ae).as_slice(), [Event::Nick { .. }]));
}

#[test]
fn a_refused_nickname_is_quoted_once() {
    let hub = Hub::new("srv", ChatLimits::default(), None);
    let e = hub.connect(Some("\u{1b}[31mred"), &[]).unwrap_err();
    assert!(e.starts_with("\"\\u{1b}[31mred\" is not a nickname"), "{e}");
}
