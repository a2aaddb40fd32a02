//! Loopback pod addresses: every pod gets its own 127.N.Y.Z, so pods can all bind the same
//! port and nothing a pod serves is reachable from outside the machine.

use std::collections::HashSet;
use std::net::Ipv4Addr;

/// Hands out 127.N.Y.Z addresses round-robin, so a freed address is not reused at once
/// (a client that still holds the old pod's address must not reach a new pod).
pub struct Allocator {
    net: u8,
    next: u16,
    used: HashSet<u16>,
}

impl Allocator {
    pub fn new(net: u8) -> Self {
        Self {
            net,
            next: 2,
            used: HashSet::new(),
        }
    }

    pub fn allocate(&mut self) -> Option<Ipv4Addr> {
        for _ in 0..=u16::MAX {
            let candidate = self.next;
            self.next = self.next.wrapping_add(1);
            let [y, z] = candidate.to_be_bytes();
            // .0 and .255 in the last octet read like network/broadcast addresses; skip them.
            if z == 0 || z == 255 || self.used.contains(&candidate) {
                continue;
            }
            self.used.insert(candidate);
            return Some(Ipv4Addr::new(127, self.net, y, z));
        }
        None
    }

    pub fn release(&mut self, ip: Ipv4Addr) {
        let [_, net, y, z] = ip.octets();
        if net == self.net {
            self.used.remove(&u16::from_be_bytes([y, z]));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_loopback_unique_and_not_reused_at_once() {
        let mut ipam = Allocator::new(1);
        let a = ipam.allocate().unwrap();
        let b = ipam.allocate().unwrap();
        assert!(a.is_loopback() && b.is_loopback());
        assert_ne!(a, b);
        ipam.release(a);
        let c = ipam.allocate().unwrap();
        assert_ne!(
            c, a,
            "a freed address must not be handed out again right away"
        );
    }

    #[test]
    fn never_hands_out_zero_or_broadcast_looking_addresses() {
        let mut ipam = Allocator::new(7);
        for _ in 0..600 {
            let ip = ipam.allocate().unwrap();
            let last = ip.octets()[3];
            assert!(last != 0 && last != 255, "{ip}");
            assert_eq!(ip.octets()[1], 7);
        }
    }
}
