//! Which relay substreams carry relayed traffic, judged from their
//! multistream-select header, free of IO.
//!
//! Every libp2p substream opens with `/multistream/1.0.0\n` and the protocol
//! name, each length-prefixed. Relay circuits run over the
//! `/libp2p/circuit/relay/0.2.0/{hop,stop}` protocols: once a circuit is
//! set up, its streams carry nothing but the relayed bytes. Identify, ping
//! and other housekeeping streams use other protocols and are not relayed
//! traffic, so they are not counted.

/// The protocol prefix shared by HOP and STOP streams.
const MARKER: &[u8] = b"/libp2p/circuit/relay/";
/// Header bytes kept per direction before giving up on classifying.
const LIMIT: usize = 256;

/// What a substream turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Not yet known: bytes are held back.
    Unknown,
    /// A HOP or STOP stream: its bytes are relayed traffic.
    Circuit,
    /// Anything else.
    Other,
}

/// Direction of bytes, seen from the relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    /// Read from the peer.
    Rx,
    /// Written to the peer.
    Tx,
}

/// Classifies one substream from the first bytes each way.
#[derive(Debug)]
pub struct Sniffer {
    kind: Kind,
    rx: Vec<u8>,
    tx: Vec<u8>,
    held: (u64, u64),
}

impl Default for Sniffer {
    fn default() -> Self {
        Self { kind: Kind::Unknown, rx: Vec::new(), tx: Vec::new(), held: (0, 0) }
    }
}

impl Sniffer {
    /// What the stream is, so far.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// Takes `bytes` passing in `dir`. Returns the `(rx, tx)` byte counts
    /// to add to the relayed totals now: held-back bytes are released once
    /// the stream is known to be a circuit.
    pub fn observe(&mut self, dir: Dir, bytes: &[u8]) -> (u64, u64) {
        let n = bytes.len() as u64;
        let split = |n: u64| if dir == Dir::Rx { (n, 0) } else { (0, n) };
        match self.kind {
            Kind::Circuit => return split(n),
            Kind::Other => return (0, 0),
            Kind::Unknown => {}
        }
        let buf = if dir == Dir::Rx { &mut self.rx } else { &mut self.tx };
        buf.extend_from_slice(&bytes[..bytes.len().min(LIMIT.saturating_sub(buf.len()))]);
        let (r, t) = split(n);
        self.held = (self.held.0 + r, self.held.1 + t);
        if contains(&self.rx, MARKER) || contains(&self.tx, MARKER) {
            self.kind = Kind::Circuit;
            self.forget();
            return std::mem::take(&mut self.held);
        }
        // The header line and one protocol line without the marker, or too
        // much header: not a circuit.
        let lines = |b: &[u8]| b.iter().filter(|&&c| c == b'\n').count();
        if lines(&self.rx) >= 2 || lines(&self.tx) >= 2 || self.rx.len() >= LIMIT || self.tx.len() >= LIMIT {
            self.kind = Kind::Other;
            self.forget();
            self.held = (0, 0);
        }
        (0, 0)
    }

    fn forget(&mut self) {
        self.rx = Vec::new();
        self.tx = Vec::new();
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A multistream-select message: varint length, then the line.
    fn msg(line: &str) -> Vec<u8> {
        let mut v = vec![u8::try_from(line.len() + 1).expect("short line")];
        v.extend_from_slice(line.as_bytes());
        v.push(b'\n');
        v
    }

    #[test]
    fn an_inbound_hop_stream_counts_from_its_first_byte() {
        let mut s = Sniffer::default();
        let header = msg("/multistream/1.0.0");
        assert_eq!(s.observe(Dir::Rx, &header), (0, 0));
        assert_eq!(s.kind(), Kind::Unknown);
        let proto = msg("/libp2p/circuit/relay/0.2.0/hop");
        let got = s.observe(Dir::Rx, &proto);
        assert_eq!(s.kind(), Kind::Circuit);
        assert_eq!(got, ((header.len() + proto.len()) as u64, 0));
        assert_eq!(s.observe(Dir::Tx, &[0; 1000]), (0, 1000));
        assert_eq!(s.observe(Dir::Rx, &[0; 7]), (7, 0));
    }

    #[test]
    fn an_outbound_stop_stream_is_recognised_from_what_the_relay_writes() {
        let mut s = Sniffer::default();
        let mut first = msg("/multistream/1.0.0");
        first.extend(msg("/libp2p/circuit/relay/0.2.0/stop"));
        assert_eq!(s.observe(Dir::Tx, &first), (0, first.len() as u64));
        assert_eq!(s.kind(), Kind::Circuit);
    }

    #[test]
    fn identify_and_ping_are_not_counted() {
        for proto in ["/ipfs/id/1.0.0", "/ipfs/ping/1.0.0", "/skein/peer/1"] {
            let mut s = Sniffer::default();
            let mut first = msg("/multistream/1.0.0");
            first.extend(msg(proto));
            assert_eq!(s.observe(Dir::Rx, &first), (0, 0));
            assert_eq!(s.kind(), Kind::Other, "{proto}");
            assert_eq!(s.observe(Dir::Tx, &[0; 5000]), (0, 0));
        }
    }

    #[test]
    fn a_stream_without_a_header_is_given_up_on() {
        let mut s = Sniffer::default();
        assert_eq!(s.observe(Dir::Rx, &[7; 300]), (0, 0));
        assert_eq!(s.kind(), Kind::Other);
    }
}
