//! Arbitrary first bytes through the door classifier, arriving in pieces of
//! any size: whatever starts like another protocol's request (a request
//! line with any method, the HTTP/2 preface, an SSH banner) must never be
//! handed to the plain-text chat.
#![no_main]

use ferry::server::sniff::{Door, decide, starts_like_a_request};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&step, input)) = data.split_first() else { return };
    let door = decide(input, usize::from(step));
    if starts_like_a_request(input) {
        assert!(matches!(door, Door::Http | Door::Foreign), "{door:?}");
    }
});
