//! Arbitrary datagrams through the NTP codec and the server's answer: no
//! panic, never a reply larger than the request, never a reply to anything
//! but mode 3, and the origin always echoes the request.
#![no_main]

use std::time::SystemTime;

use ferry::time::ntp;
use ferry::time::{TimeConfig, TimeService};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    thread_local! {
        static SERVICE: TimeService = TimeService::new(TimeConfig::default());
    }
    if let Ok(p) = ntp::parse(data) {
        assert_eq!(ntp::parse(&ntp::encode(&p)), Ok(p));
    }
    SERVICE.with(|svc| {
        for reply in [
            svc.answer_ntp(data, SystemTime::now(), 0, SystemTime::now),
            svc.kiss_of_death(data),
        ]
        .into_iter()
        .flatten()
        {
            assert!(reply.len() <= data.len());
            assert_eq!(data[0] & 7, ntp::MODE_CLIENT);
            assert_eq!(&reply[24..32], &data[40..48]);
        }
    });
    let _ = ferry::time::server::is_text_query(data);
});
