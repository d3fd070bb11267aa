//! The cluster in the loop (PROTOCOL.md section 10): the two Redis links are
//! sockets in the same poll; each turn the room's asks go out, and records
//! that come in are applied to the room like any other input. The protocol
//! work is in [`crate::cluster`]; this is only the glue.

use std::time::Instant;

use mio::Token;

use super::Server;

/// Token of the Redis command link.
pub(super) const REDIS_CMD: Token = Token(usize::MAX - 3);
/// Token of the Redis subscribed link.
pub(super) const REDIS_SUB: Token = Token(usize::MAX - 4);

impl Server {
    /// A Redis link is ready (readable, writable, or connected).
    pub(super) fn redis_ready(&mut self, is_cmd: bool, now: Instant) {
        let Some(mut cluster) = self.cluster.take() else {
            return;
        };
        let (room, mut wire) = self.wire(now);
        cluster.ready(is_cmd, room, &mut wire, now);
        self.cluster = Some(cluster);
    }

    /// Once per turn: records from the other servers are delivered within
    /// the turn's output budget, the room's asks go to Redis, timers run,
    /// and the links' interest follows what they have to write.
    pub(super) fn redis_turn(&mut self, now: Instant) {
        let Some(mut cluster) = self.cluster.take() else {
            return;
        };
        let budget = self.delivery_budget();
        let registry = self.poll.registry().try_clone();
        match registry {
            Ok(registry) => {
                let (room, mut wire) = self.wire(now);
                let start = wire.tally.produced;
                cluster.deliver(room, &mut wire, now, |w| w.tally.produced - start < budget);
                cluster.turn(&registry, room, &mut wire, now);
                cluster.interest(&registry);
            }
            Err(e) => log::warn!("cluster: registry: {e}"),
        }
        self.cluster = Some(cluster);
    }

    /// What this turn may queue from the cluster's records: the turn's
    /// budget (its own, beside the users' reads), a quarter of it while a
    /// reader is behind, nothing while reading is paused for one.
    fn delivery_budget(&self) -> usize {
        if self.paused_at.is_some() {
            0
        } else if !self.behind.is_empty() {
            self.turn_budget / 4
        } else {
            self.turn_budget
        }
    }

    /// True while the cluster has records waiting for a turn's budget.
    pub(super) fn redis_backlog(&self) -> bool {
        self.cluster.as_ref().is_some_and(|c| c.backlog())
    }
}
