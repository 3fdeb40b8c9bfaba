//! Which chunk of a group file to ask which member device for, free of IO
//! and clocks (time comes in as `now`).
//!
//! A [`Swarm`] is one receiving device's plan. Its sources are the device
//! that offered the file (the origin, which holds all of it) and other
//! member devices that hold some of it, as their last status said. Each
//! missing chunk goes to a member device that holds it when one does (the
//! best ranked, so a member on this device's own network wins over one
//! elsewhere and a direct path over a relayed one, then the least busy); only a chunk no member holds goes to the origin. The origin sends
//! each chunk to one member only and answers anyone else that a member has
//! it ([`Swarm::elsewhere`]): the plan then waits for that member to show
//! the chunk, and asks the origin again with `force` only when that member
//! cannot be reached or does not deliver within the patience. Every device
//! walks the file from its own starting chunk, so members starting at once
//! ask the origin for different chunks.
//!
//! Requests are bounded per source and in all (chunks asked for plus
//! chunks arrived and not yet written).

use super::manifest::Have;
use skein_proto::bytes::DeviceId;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

/// Bad chunks a source may send before it is dropped.
const MAX_BAD: u32 = 3;
/// Missing chunks looked at per planning round.
const MAX_SCAN: usize = 8192;

/// Limits of a [`Swarm`].
#[derive(Debug, Clone, Copy)]
pub struct SwarmLimits {
    /// Chunks asked of one source and not yet arrived.
    pub per_source: usize,
    /// Chunks asked for or arrived and not yet written, in all.
    pub total: usize,
    /// How long to wait for a member the origin named before asking the
    /// origin with `force`.
    pub patience: Duration,
}

impl Default for SwarmLimits {
    fn default() -> Self {
        SwarmLimits { per_source: 8, total: 16, patience: Duration::from_secs(10) }
    }
}

/// Chunks to ask one source for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ask {
    /// The source.
    pub device: DeviceId,
    /// The chunks, in order.
    pub chunks: Vec<u64>,
    /// Ask the origin to send them even though it sent them to another member.
    pub force: bool,
}

#[derive(Debug, Clone)]
struct Source {
    origin: bool,
    rank: u8,
    have: Have,
    asked: usize,
    bad: u32,
}

#[derive(Debug, Clone, Copy)]
struct Redirect {
    holder: DeviceId,
    since: Instant,
}

/// One receiving device's plan for a group file.
#[derive(Debug, Clone)]
pub struct Swarm {
    have: Have,
    start: u64,
    limits: SwarmLimits,
    sources: BTreeMap<DeviceId, Source>,
    asked: HashMap<u64, DeviceId>,
    writing: HashMap<u64, DeviceId>,
    redirects: HashMap<u64, Redirect>,
    unreachable: HashSet<DeviceId>,
    refetched: u64,
}

impl Swarm {
    /// Plans the chunks `have` lacks, walking from chunk `start`.
    pub fn new(have: Have, start: u64, limits: SwarmLimits) -> Swarm {
        let start = if have.count() == 0 { 0 } else { start % have.count() };
        Swarm {
            have,
            start,
            limits: SwarmLimits { per_source: limits.per_source.max(1), total: limits.total.max(1), ..limits },
            sources: BTreeMap::new(),
            asked: HashMap::new(),
            writing: HashMap::new(),
            redirects: HashMap::new(),
            unreachable: HashSet::new(),
            refetched: 0,
        }
    }

    /// A source is connected: the origin (holding everything) or a member
    /// device whose holdings come with its status. `rank` orders sources
    /// that hold the same chunk: lower first.
    pub fn add(&mut self, device: DeviceId, origin: bool, rank: u8) {
        let count = self.have.count();
        let have = if origin { Have::all(count) } else { Have::none(count) };
        self.sources.insert(device, Source { origin, rank, have, asked: 0, bad: 0 });
        self.unreachable.remove(&device);
    }

    /// A source went away: what was asked of it is asked elsewhere.
    pub fn remove(&mut self, device: DeviceId) {
        self.sources.remove(&device);
        self.asked.retain(|_, d| *d != device);
    }

    /// A member device the origin named could not be reached: chunks
    /// waiting for it are asked of the origin at once.
    pub fn unreachable(&mut self, device: DeviceId) {
        self.remove(device);
        self.unreachable.insert(device);
    }

    /// A member device's status: the chunks it holds now.
    pub fn holding(&mut self, device: DeviceId, have: Have) {
        let count = self.have.count();
        if let Some(s) = self.sources.get_mut(&device)
            && !s.origin
            && have.count() == count
            && have.is_consistent()
        {
            s.have = have;
        }
    }

    /// Whether `device` is a source now.
    pub fn has_source(&self, device: &DeviceId) -> bool {
        self.sources.contains_key(device)
    }

    /// Member devices the origin named for chunks still missing that are
    /// not sources yet: the ones worth connecting to first.
    pub fn wanted(&self) -> Vec<DeviceId> {
        let mut out: Vec<DeviceId> = self
            .redirects
            .iter()
            .filter(|(c, _)| !self.have.contains(**c))
            .map(|(_, r)| r.holder)
            .filter(|d| !self.sources.contains_key(d) && !self.unreachable.contains(d))
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// What to ask for now.
    pub fn next(&mut self, now: Instant) -> Vec<Ask> {
        let count = self.have.count();
        let mut room = self.limits.total.saturating_sub(self.asked.len() + self.writing.len());
        let mut asks: Vec<Ask> = Vec::new();
        if count == 0 || room == 0 || self.sources.is_empty() {
            return asks;
        }
        let origin = self.sources.iter().find(|(_, s)| s.origin).map(|(d, _)| *d);
        let mut pos = self.start;
        let mut wrapped = false;
        let mut scanned = 0;
        while room > 0 && scanned < MAX_SCAN {
            if self.sources.values().all(|s| s.asked >= self.limits.per_source) {
                break;
            }
            let c = match self.have.next_missing(pos) {
                Some(c) if !wrapped || c < self.start => c,
                _ if !wrapped => {
                    wrapped = true;
                    pos = 0;
                    continue;
                }
                _ => break,
            };
            pos = c + 1;
            scanned += 1;
            if self.asked.contains_key(&c) || self.writing.contains_key(&c) {
                continue;
            }
            let per = self.limits.per_source;
            let peer = self
                .sources
                .iter()
                .filter(|(_, s)| !s.origin && s.asked < per && s.have.contains(c))
                .min_by_key(|(d, s)| (s.rank, s.asked, **d))
                .map(|(d, _)| *d);
            let (device, force) = match (peer, origin) {
                (Some(d), _) => (d, false),
                (None, Some(o)) if self.sources.get(&o).is_some_and(|s| s.asked < per) => {
                    match self.redirects.get(&c) {
                        None => (o, false),
                        Some(r)
                            if self.unreachable.contains(&r.holder)
                                || now.saturating_duration_since(r.since) >= self.limits.patience =>
                        {
                            (o, true)
                        }
                        // The member the origin named should have it soon.
                        Some(_) => continue,
                    }
                }
                _ => continue,
            };
            self.asked.insert(c, device);
            if let Some(s) = self.sources.get_mut(&device) {
                s.asked += 1;
            }
            match asks.iter_mut().find(|a| a.device == device && a.force == force) {
                Some(a) => a.chunks.push(c),
                None => asks.push(Ask { device, chunks: vec![c], force }),
            }
            room -= 1;
        }
        asks
    }

    fn unask(&mut self, device: DeviceId, index: u64) -> bool {
        if self.asked.get(&index) != Some(&device) {
            return false;
        }
        self.asked.remove(&index);
        if let Some(s) = self.sources.get_mut(&device) {
            s.asked = s.asked.saturating_sub(1);
        }
        true
    }

    /// Chunk `index` arrived from `device`. Returns whether it was asked
    /// of it (anything else is ignored); it then awaits [`Swarm::stored`]
    /// or [`Swarm::bad`].
    pub fn arrived(&mut self, device: DeviceId, index: u64) -> bool {
        if !self.unask(device, index) || self.have.contains(index) {
            return false;
        }
        self.writing.insert(index, device);
        true
    }

    /// Chunk `index` is verified and recorded.
    pub fn stored(&mut self, index: u64) {
        self.writing.remove(&index);
        self.redirects.remove(&index);
        self.have.insert(index);
    }

    /// Chunk `index` failed verification: it is asked for again, of
    /// another source when one holds it. Returns the source to drop when
    /// it sent too many bad chunks.
    pub fn bad(&mut self, index: u64) -> Option<DeviceId> {
        let device = self.writing.remove(&index)?;
        self.refetched += 1;
        let s = self.sources.get_mut(&device)?;
        if !s.origin {
            s.have.remove(index);
        }
        s.bad += 1;
        (s.bad >= MAX_BAD).then_some(device)
    }

    /// `device` does not hold chunk `index` after all.
    pub fn missing(&mut self, device: DeviceId, index: u64) {
        if self.unask(device, index)
            && let Some(s) = self.sources.get_mut(&device)
            && !s.origin
        {
            s.have.remove(index);
        }
    }

    /// The origin sent chunk `index` to `holder` already.
    pub fn elsewhere(&mut self, device: DeviceId, index: u64, holder: DeviceId, now: Instant) {
        if self.unask(device, index) {
            self.redirects.entry(index).or_insert(Redirect { holder, since: now });
        }
    }

    /// Whether every chunk is recorded.
    pub fn is_done(&self) -> bool {
        self.have.is_complete()
    }

    /// The recorded chunks.
    pub fn have(&self) -> &Have {
        &self.have
    }

    /// Chunks asked for or being written.
    pub fn outstanding(&self) -> usize {
        self.asked.len() + self.writing.len()
    }

    /// Chunks that failed verification and were asked for again.
    pub fn refetched(&self) -> u64 {
        self.refetched
    }
}

/// Where a device starts walking a file of `count` chunks: spread by its
/// id, so members that start at once ask the origin for different chunks.
pub fn start_for(device: &DeviceId, count: u64) -> u64 {
    if count == 0 {
        return 0;
    }
    let mut first = [0u8; 8];
    first.copy_from_slice(&device.0[..8]);
    u64::from_le_bytes(first) % count
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    fn dev(n: u8) -> DeviceId {
        DeviceId([n; 16])
    }

    const ORIGIN: u8 = 100;

    fn limits() -> SwarmLimits {
        SwarmLimits { per_source: 4, total: 8, patience: Duration::from_secs(10) }
    }

    #[test]
    fn a_chunk_a_member_holds_is_asked_of_it_not_of_the_origin() {
        let now = Instant::now();
        let mut s = Swarm::new(Have::none(10), 0, limits());
        s.add(dev(ORIGIN), true, 0);
        s.add(dev(1), false, 0);
        let mut peer = Have::none(10);
        for i in 0..3 {
            peer.insert(i);
        }
        s.holding(dev(1), peer);
        let asks = s.next(now);
        assert_eq!(
            asks,
            vec![
                Ask { device: dev(1), chunks: vec![0, 1, 2], force: false },
                Ask { device: dev(ORIGIN), chunks: vec![3, 4, 5, 6], force: false },
            ]
        );
        assert!(s.next(now).is_empty(), "the origin's window is full and the member has nothing else");
    }

    #[test]
    fn a_nearby_member_wins_over_a_distant_or_relayed_one_and_load_is_spread() {
        let now = Instant::now();
        let mut s = Swarm::new(Have::none(6), 0, limits());
        s.add(dev(1), false, 1);
        s.add(dev(2), false, 0);
        s.add(dev(3), false, 0);
        s.add(dev(4), false, 2);
        for d in [1, 2, 3, 4] {
            s.holding(dev(d), Have::all(6));
        }
        let asks = s.next(now);
        let of = |d: u8| asks.iter().find(|a| a.device == dev(d)).map_or(0, |a| a.chunks.len());
        assert_eq!((of(1), of(2), of(3), of(4)), (0, 3, 3, 0), "{asks:?}");
        // Without the nearby ones, the direct member beats the relayed one.
        let mut s = Swarm::new(Have::none(6), 0, limits());
        s.add(dev(4), false, 2);
        s.add(dev(1), false, 1);
        for d in [1, 4] {
            s.holding(dev(d), Have::all(6));
        }
        let asks = s.next(now);
        let of = |d: u8| asks.iter().find(|a| a.device == dev(d)).map_or(0, |a| a.chunks.len());
        assert_eq!((of(1), of(4)), (4, 2), "the direct member first, as much as it may take: {asks:?}");
    }

    #[test]
    fn the_walk_starts_at_the_devices_own_chunk_and_wraps() {
        let now = Instant::now();
        let mut s = Swarm::new(Have::none(6), 4, SwarmLimits { per_source: 6, total: 6, ..limits() });
        s.add(dev(ORIGIN), true, 0);
        assert_eq!(s.next(now)[0].chunks, vec![4, 5, 0, 1, 2, 3]);
        assert_eq!(start_for(&dev(7), 0), 0);
        assert!(start_for(&dev(7), 64) < 64);
    }

    #[test]
    fn a_redirected_chunk_waits_for_its_holder_then_is_forced() {
        let t0 = Instant::now();
        let mut s = Swarm::new(Have::none(2), 0, limits());
        s.add(dev(ORIGIN), true, 0);
        let asks = s.next(t0);
        assert_eq!(asks[0].chunks, vec![0, 1]);
        s.elsewhere(dev(ORIGIN), 0, dev(5), t0);
        assert!(s.arrived(dev(ORIGIN), 1));
        s.stored(1);
        assert_eq!(s.wanted(), vec![dev(5)], "the named holder is worth connecting to");
        assert!(s.next(t0 + Duration::from_secs(1)).is_empty(), "waiting for the holder");
        // The holder shows it: asked of the holder.
        s.add(dev(5), false, 0);
        let mut h = Have::none(2);
        h.insert(0);
        s.holding(dev(5), h);
        assert_eq!(s.next(t0 + Duration::from_secs(2)), vec![Ask { device: dev(5), chunks: vec![0], force: false }]);
        // It says it does not have it after all and then goes away; after
        // the patience the origin is asked with force.
        s.missing(dev(5), 0);
        s.remove(dev(5));
        assert!(s.next(t0 + Duration::from_secs(3)).is_empty());
        assert_eq!(
            s.next(t0 + Duration::from_secs(10)),
            vec![Ask { device: dev(ORIGIN), chunks: vec![0], force: true }]
        );
    }

    #[test]
    fn an_unreachable_holder_means_forcing_at_once() {
        let t0 = Instant::now();
        let mut s = Swarm::new(Have::none(1), 0, limits());
        s.add(dev(ORIGIN), true, 0);
        s.next(t0);
        s.elsewhere(dev(ORIGIN), 0, dev(5), t0);
        s.unreachable(dev(5));
        assert!(s.wanted().is_empty());
        assert_eq!(s.next(t0), vec![Ask { device: dev(ORIGIN), chunks: vec![0], force: true }]);
    }

    #[test]
    fn bad_chunks_are_asked_again_elsewhere_and_a_liar_is_dropped() {
        let now = Instant::now();
        let mut s = Swarm::new(Have::none(8), 0, SwarmLimits { per_source: 8, total: 8, ..limits() });
        s.add(dev(ORIGIN), true, 0);
        s.add(dev(1), false, 0);
        s.holding(dev(1), Have::all(8));
        assert_eq!(s.next(now), vec![Ask { device: dev(1), chunks: (0..8).collect(), force: false }]);
        for i in 0..3 {
            assert!(s.arrived(dev(1), i));
            let drop = s.bad(i);
            assert_eq!(drop, (i == 2).then_some(dev(1)));
        }
        assert!(!s.arrived(dev(1), 0), "a chunk not asked of it now is ignored");
        s.remove(dev(1));
        assert_eq!(s.refetched(), 3);
        assert_eq!(s.next(now), vec![Ask { device: dev(ORIGIN), chunks: (0..8).collect(), force: false }]);
    }

    /// What a member sees of the origin's record of who got each chunk.
    struct Origin {
        given: Vec<Option<usize>>,
        sent: u64,
    }

    enum Reply {
        Chunk(u64),
        Missing(u64),
        Elsewhere(u64, usize),
    }

    /// `n` members fetch a file of `count` chunks at once from the origin
    /// and from each other, one hop per tick, statuses every few ticks;
    /// `gone` leaves at `gone_at` with what it holds. Returns the chunks
    /// the origin sent and the ticks it took.
    fn simulate(n: usize, count: u64, gone: Option<(usize, u64)>) -> (u64, u64, Vec<Swarm>) {
        let t0 = Instant::now();
        let mut origin = Origin { given: vec![None; count as usize], sent: 0 };
        let mut members: Vec<Swarm> = (0..n)
            .map(|i| {
                let mut s = Swarm::new(Have::none(count), start_for(&dev(i as u8 + 1), count), limits());
                s.add(dev(ORIGIN), true, 0);
                s
            })
            .collect();
        let mut queues: Vec<VecDeque<(usize, Reply)>> = (0..n).map(|_| VecDeque::new()).collect();
        let alive = |i: usize, tick: u64| gone.is_none_or(|(g, at)| g != i || tick < at);
        for tick in 0..10_000u64 {
            let now = t0 + Duration::from_millis(100 * tick);
            for i in 0..n {
                if !alive(i, tick) {
                    continue;
                }
                // Replies sent last tick arrive.
                while let Some((from, r)) = queues[i].pop_front() {
                    let from = if from == usize::MAX { dev(ORIGIN) } else { dev(from as u8 + 1) };
                    match r {
                        Reply::Chunk(c) => {
                            if members[i].arrived(from, c) {
                                members[i].stored(c);
                            }
                        }
                        Reply::Missing(c) => members[i].missing(from, c),
                        Reply::Elsewhere(c, h) => members[i].elsewhere(from, c, dev(h as u8 + 1), now),
                    }
                }
                // Members find each other through the origin's status.
                if tick >= 2 && tick % 3 == 2 {
                    for j in (0..n).filter(|j| *j != i) {
                        if !alive(j, tick) {
                            if members[i].has_source(&dev(j as u8 + 1)) {
                                members[i].unreachable(dev(j as u8 + 1));
                            }
                            continue;
                        }
                        if !members[i].has_source(&dev(j as u8 + 1)) {
                            members[i].add(dev(j as u8 + 1), false, 0);
                        }
                        let h = members[j].have().clone();
                        members[i].holding(dev(j as u8 + 1), h);
                    }
                }
                for ask in members[i].next(now) {
                    let from = if ask.device == dev(ORIGIN) { usize::MAX } else { usize::from(ask.device.0[0] - 1) };
                    for c in ask.chunks {
                        let reply = if from == usize::MAX {
                            match origin.given[c as usize] {
                                Some(h) if h != i && !ask.force => Reply::Elsewhere(c, h),
                                _ => {
                                    origin.given[c as usize].get_or_insert(i);
                                    origin.sent += 1;
                                    Reply::Chunk(c)
                                }
                            }
                        } else if alive(from, tick) && members[from].have().contains(c) {
                            Reply::Chunk(c)
                        } else {
                            Reply::Missing(c)
                        };
                        queues[i].push_back((from, reply));
                    }
                }
            }
            if (0..n).filter(|i| alive(*i, tick)).all(|i| members[i].is_done()) {
                return (origin.sent, tick, members);
            }
        }
        panic!("the swarm never finished");
    }

    #[test]
    fn members_fetching_at_once_get_almost_everything_from_each_other() {
        let count = 64;
        let (sent, ticks, members) = simulate(4, count, None);
        assert!(members.iter().all(Swarm::is_done));
        assert!(sent < count + count / 4, "the origin sent {sent} chunks of {count} to 4 members");
        assert!(ticks < 200, "took {ticks} ticks");
    }

    #[test]
    fn a_member_leaving_half_way_does_not_strand_the_others() {
        let count = 64;
        let (sent, _, members) = simulate(4, count, Some((1, 6)));
        for (i, m) in members.iter().enumerate() {
            assert!(i == 1 || m.is_done(), "member {i} finished");
        }
        assert!(sent < 2 * count, "the origin sent {sent}");
    }
}
