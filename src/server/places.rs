//! Places under `--max-clients` and `--max-per-ip` (PROTOCOL.md section 5).
//!
//! Every accepted chat connection takes a [`Place`]; it gives it back the
//! moment it leaves the room (`/quit`, a timeout, a drop, EOF), not when its
//! last bytes have drained, so a newcomer can take the place as soon as the
//! others have been told someone left.

use std::collections::HashMap;
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;

/// Why a connection gets no place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// `--max-clients` connections are open.
    Full,
    /// `--max-per-ip` connections are open from this address.
    PerIp,
}

impl Refused {
    /// The notice the refused connection gets before it is closed.
    pub fn notice(self) -> &'static [u8] {
        match self {
            Refused::Full => b"[SERVER]: The server is full; please try again later.\n",
            Refused::PerIp => {
                b"[SERVER]: Too many connections from your address; please try again later.\n"
            }
        }
    }
}

/// A place held by one connection; given back once with [`Places::give_back`].
#[derive(Debug)]
pub struct Place {
    /// The address counted under `--max-per-ip`; `None` when exempt or
    /// when there is no per-address limit.
    counted: Option<IpAddr>,
}

/// The places in use.
#[derive(Debug)]
pub struct Places {
    /// `--max-clients`.
    max_clients: usize,
    /// `--max-per-ip`; 0 is no limit.
    max_per_ip: usize,
    /// `--per-ip-exempt`: addresses not counted per address.
    exempt: Vec<IpNet>,
    /// Places held now.
    held: usize,
    /// Places held per counted address; entries at zero are removed.
    per_ip: HashMap<IpAddr, usize>,
}

impl Places {
    /// No places held yet.
    pub fn new(max_clients: usize, max_per_ip: usize, exempt: Vec<IpNet>) -> Self {
        Places {
            max_clients,
            max_per_ip,
            exempt,
            held: 0,
            per_ip: HashMap::new(),
        }
    }

    /// Places held now.
    pub fn held(&self) -> usize {
        self.held
    }

    /// Takes a place for a connection from `ip`, or says why there is none.
    pub fn take(&mut self, ip: IpAddr) -> Result<Place, Refused> {
        if self.held >= self.max_clients {
            return Err(Refused::Full);
        }
        let ip = ip.to_canonical();
        let counted =
            (self.max_per_ip > 0 && !self.exempt.iter().any(|n| n.contains(&ip))).then_some(ip);
        if let Some(ip) = counted {
            let n = self.per_ip.entry(ip).or_insert(0);
            if *n >= self.max_per_ip {
                return Err(Refused::PerIp);
            }
            *n += 1;
        }
        self.held += 1;
        Ok(Place { counted })
    }

    /// Gives a place back.
    pub fn give_back(&mut self, place: Place) {
        self.held -= 1;
        if let Some(ip) = place.counted {
            if let Some(n) = self.per_ip.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    self.per_ip.remove(&ip);
                }
            }
        }
    }
}

/// Parses `--per-ip-exempt`: a comma-separated list of addresses and CIDR
/// prefixes; an empty string exempts none.
pub fn parse_exempt(list: &str) -> Result<Vec<IpNet>, String> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            IpNet::from_str(s)
                .or_else(|_| IpAddr::from_str(s).map(IpNet::from))
                .map_err(|_| format!("{s:?} is not an address or CIDR prefix"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn max_clients_counts_every_place() {
        let mut p = Places::new(2, 0, vec![]);
        let a = p.take(ip("10.0.0.1")).unwrap();
        let _b = p.take(ip("10.0.0.2")).unwrap();
        assert_eq!(p.take(ip("10.0.0.3")).unwrap_err(), Refused::Full);
        p.give_back(a);
        assert!(p.take(ip("10.0.0.3")).is_ok());
    }

    #[test]
    fn per_ip_limit_and_exemptions() {
        let exempt = parse_exempt("127.0.0.0/8, ::1").unwrap();
        let mut p = Places::new(100, 2, exempt);
        let a = p.take(ip("10.0.0.1")).unwrap();
        let _b = p.take(ip("10.0.0.1")).unwrap();
        assert_eq!(p.take(ip("10.0.0.1")).unwrap_err(), Refused::PerIp);
        // The same address seen through an IPv4-mapped IPv6 socket.
        assert_eq!(p.take(ip("::ffff:10.0.0.1")).unwrap_err(), Refused::PerIp);
        assert!(p.take(ip("10.0.0.2")).is_ok());
        for _ in 0..10 {
            p.take(ip("127.0.0.1")).unwrap();
            p.take(ip("::1")).unwrap();
            p.take(ip("::ffff:127.0.0.5")).unwrap();
        }
        p.give_back(a);
        assert!(p.take(ip("10.0.0.1")).is_ok());
        assert_eq!(p.held(), 33);
    }

    #[test]
    fn exempt_list_parsing() {
        assert!(parse_exempt("").unwrap().is_empty());
        assert_eq!(parse_exempt("10.1.2.3,fd00::/8").unwrap().len(), 2);
        assert!(parse_exempt("10.0.0.0/33").is_err());
        assert!(parse_exempt("localhost").is_err());
    }

    #[test]
    fn zero_means_no_per_ip_limit() {
        let mut p = Places::new(100, 0, vec![]);
        for _ in 0..50 {
            p.take(ip("10.0.0.1")).unwrap();
        }
        assert!(p.per_ip.is_empty());
    }
}
