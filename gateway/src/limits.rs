//! Connection budgets for one listener: a total cap and, where set, a cap per
//! client address, so no single address (or a flood of idle clients) can take
//! every slot of a door, and no door can take another's slots.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The listener has no free slot.
    Full,
    /// This client address already holds its share.
    PerAddress,
}

/// Connections held per client address.
type Counts = Arc<Mutex<HashMap<IpAddr, usize>>>;

/// The budget of one listener.
#[derive(Debug)]
pub struct ConnectionLimits {
    total: Arc<Semaphore>,
    per_address: Option<usize>,
    by_address: Counts,
}

/// A held slot; dropping it gives the slot back.
#[derive(Debug)]
pub struct Slot {
    _permit: OwnedSemaphorePermit,
    address: Option<(IpAddr, Counts)>,
}

impl ConnectionLimits {
    /// At most `total` connections, and at most `per_address` from one address
    /// (an IPv6 client counts by its /64) when given.
    #[must_use]
    pub fn new(total: usize, per_address: Option<usize>) -> Self {
        Self {
            total: Arc::new(Semaphore::new(total)),
            per_address: per_address.filter(|&n| n > 0),
            by_address: Arc::default(),
        }
    }

    /// Takes a slot for a client at `ip`, or says why not.
    pub fn admit(&self, ip: IpAddr) -> Result<Slot, Refusal> {
        let Some(cap) = self.per_address else {
            let permit = Arc::clone(&self.total).try_acquire_owned().map_err(|_| Refusal::Full)?;
            return Ok(Slot {
                _permit: permit,
                address: None,
            });
        };
        let key = address_key(ip);
        let mut counts = self.by_address.lock().unwrap_or_else(PoisonError::into_inner);
        let held = counts.get(&key).copied().unwrap_or(0);
        if held >= cap {
            return Err(Refusal::PerAddress);
        }
        let permit = Arc::clone(&self.total).try_acquire_owned().map_err(|_| Refusal::Full)?;
        counts.insert(key, held + 1);
        Ok(Slot {
            _permit: permit,
            address: Some((key, Arc::clone(&self.by_address))),
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some((key, counts)) = self.address.take() {
            let mut counts = counts.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(held) = counts.get_mut(&key) {
                *held = held.saturating_sub(1);
                if *held == 0 {
                    counts.remove(&key);
                }
            }
        }
    }
}

/// IPv4 (also when mapped into IPv6) counts per address; IPv6 per /64, since
/// one client usually holds a whole /64.
fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return IpAddr::V4(v4);
            }
            let mut segments = v6.segments();
            for segment in &mut segments[4..] {
                *segment = 0;
            }
            IpAddr::V6(segments.into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_per_address_and_in_total_and_frees_on_drop() {
        let limits = ConnectionLimits::new(3, Some(2));
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let first = limits.admit(a).unwrap();
        let _second = limits.admit(a).unwrap();
        assert_eq!(limits.admit(a).unwrap_err(), Refusal::PerAddress);
        let _third = limits.admit(b).unwrap();
        assert_eq!(limits.admit(b).unwrap_err(), Refusal::Full);
        drop(first);
        assert!(limits.admit(a).is_ok());
    }

    #[test]
    fn ipv6_counts_per_64() {
        let limits = ConnectionLimits::new(10, Some(1));
        let _one = limits.admit("2001:db8::1".parse().unwrap()).unwrap();
        assert_eq!(
            limits.admit("2001:db8::2".parse().unwrap()).unwrap_err(),
            Refusal::PerAddress
        );
        assert!(limits.admit("2001:db8:0:1::1".parse().unwrap()).is_ok());
    }
}
