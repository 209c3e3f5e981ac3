//! Arbitrary strings through the name validator: whatever it accepts must be
//! a path that cannot leave the root, and must survive a round trip.
#![no_main]

use std::path::{Component, Path};

use ferry::files::RelPath;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    let Ok(rel) = RelPath::parse(s) else { return };
    for part in rel.parts() {
        assert!(!part.is_empty() && part != "." && part != "..");
        assert!(!part.contains(['/', '\\', '\0']));
        assert!(!part.chars().any(char::is_control));
        assert!(!part.ends_with(".ferry-part"));
    }
    let root = Path::new("/srv/root");
    let joined = rel.to_path(root);
    assert!(joined.starts_with(root));
    assert!(joined.components().skip(3).all(|c| matches!(c, Component::Normal(_))));
    assert_eq!(RelPath::parse(&rel.as_wire()).unwrap(), rel);
    let _ = ferry::files::name::check_batch([(s, false)]);
});
