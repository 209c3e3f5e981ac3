//! `ferry subnet`: the subnet calculator.

use std::net::IpAddr;
use std::process::ExitCode;

use clap::Args;

use crate::subnet::{Subnet, SubnetError};

/// Arguments of `ferry subnet`.
#[derive(Debug, Args)]
#[command(after_help = "\
EXAMPLES:
  ferry subnet 192.168.1.10/24                 network, broadcast, host range
  ferry subnet 192.168.1.10 255.255.255.0      the same with a dotted mask
  ferry subnet 192.168.1.10/24 192.168.1.77    ... and is .77 on the same LAN?
  ferry subnet 2001:db8::1/64 --json

EXIT STATUS: 0, and every other address given is on the network; 1, one of
them is not; 2, the input is not an address, prefix or contiguous mask.")]
pub struct SubnetArgs {
    /// ADDRESS/PREFIX or ADDRESS/MASK, or ADDRESS followed by a dotted MASK.
    pub network: String,
    /// A dotted mask (when the first argument has none), then addresses to
    /// test for being on the same network.
    pub rest: Vec<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

fn parse(a: &SubnetArgs) -> Result<(Subnet, Vec<IpAddr>), SubnetError> {
    let mut rest = a.rest.as_slice();
    // A second argument is the mask when the first has no prefix and it
    // reads as a contiguous mask of the same family, or is plainly meant as
    // one (it starts with 255, as no host address does): then it must be
    // a valid one.
    let meant_as_mask = |m: &str| {
        m.trim()
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|m| m.octets()[0] == 255)
    };
    let subnet = match rest.first() {
        Some(m)
            if !a.network.contains('/')
                && (meant_as_mask(m) || Subnet::parse(&a.network, Some(m)).is_ok()) =>
        {
            rest = &rest[1..];
            Subnet::parse(&a.network, Some(m))?
        }
        _ => Subnet::parse(&a.network, None)?,
    };
    let others = rest
        .iter()
        .map(|s| {
            s.trim()
                .parse::<IpAddr>()
                .map_err(|_| SubnetError::Address(s.clone()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((subnet, others))
}

pub(crate) fn run(a: &SubnetArgs) -> ExitCode {
    let report = parse(a).and_then(|(s, others)| s.report(&others));
    let report = match report {
        Ok(r) => r,
        Err(e) => {
            crate::say!("ferry: {e}");
            return ExitCode::from(2);
        }
    };
    if a.json {
        if super::output::print_json(&report).is_err() {
            return ExitCode::from(1);
        }
    } else {
        println!("address    {}", report.address);
        println!("network    {}", report.cidr);
        println!("netmask    {}", report.netmask);
        println!("wildcard   {}", report.wildcard);
        if let Some(b) = &report.broadcast {
            println!("broadcast  {b}");
        }
        println!(
            "hosts      {} - {} ({})",
            report.first_host, report.last_host, report.hosts
        );
        for (other, same) in &report.same_network {
            let verdict = if *same { "is on" } else { "is NOT on" };
            println!("{other} {verdict} the same network");
        }
    }
    if report.same_network.iter().all(|(_, same)| *same) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
