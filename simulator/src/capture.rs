//! The SMPP traffic of each session as it crossed the socket (after TLS), kept in memory and
//! written as a classic pcap file that Wireshark and tshark decode as SMPP: Ethernet, IPv4 or
//! IPv6 and TCP headers are synthesised from the real endpoints, with a handshake, consistent
//! sequence and acknowledgement numbers, and a FIN for a closed session.

use std::collections::BTreeMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::clock::rfc3339;

/// Octets kept per session unless configured otherwise; later traffic is not recorded.
pub const DEFAULT_MAX_BYTES_PER_SESSION: usize = 1 << 20;
/// Sessions kept unless configured otherwise; the oldest closed one goes first.
pub const DEFAULT_MAX_SESSIONS: usize = 64;

/// Bytes one way at one moment.
#[derive(Debug, Clone)]
struct Chunk {
    at: SystemTime,
    from_client: bool,
    data: Vec<u8>,
}

/// One session's traffic.
#[derive(Debug)]
struct SessionCapture {
    client: SocketAddr,
    server: SocketAddr,
    started: SystemTime,
    closed: Option<SystemTime>,
    account: Option<String>,
    chunks: Vec<Chunk>,
    bytes: usize,
    truncated: bool,
}

/// A session as `GET /api/sessions` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct SessionView {
    pub id: u64,
    pub client: String,
    pub server: String,
    pub account: Option<String>,
    pub started_at: String,
    pub closed_at: Option<String>,
    /// SMPP octets recorded, both ways.
    pub bytes: usize,
    /// Whether the per-session limit cut the recording short.
    pub truncated: bool,
}

/// Every session's capture, bounded in sessions and in octets per session.
pub struct Captures {
    sessions: Mutex<BTreeMap<u64, Arc<Mutex<SessionCapture>>>>,
    max_bytes_per_session: usize,
    max_sessions: usize,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A capture is appended to whole or not at all; a panic elsewhere cannot tear it.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Captures {
    /// `max_bytes_per_session` 0 records nothing.
    pub fn new(max_bytes_per_session: usize, max_sessions: usize) -> Self {
        Self {
            sessions: Mutex::new(BTreeMap::new()),
            max_bytes_per_session,
            max_sessions: max_sessions.max(1),
        }
    }

    /// Starts recording session `id` between `client` and `server`; the returned handle
    /// records what its stream carries.
    pub fn open(&self, id: u64, client: SocketAddr, server: SocketAddr) -> Recorder {
        let capture = Arc::new(Mutex::new(SessionCapture {
            client,
            server,
            started: SystemTime::now(),
            closed: None,
            account: None,
            chunks: Vec::new(),
            bytes: 0,
            truncated: false,
        }));
        let mut sessions = lock(&self.sessions);
        while sessions.len() >= self.max_sessions {
            // The oldest closed session goes first, else the oldest.
            let oldest = sessions
                .iter()
                .find(|(_, c)| lock(c).closed.is_some())
                .or_else(|| sessions.iter().next())
                .map(|(id, _)| *id);
            match oldest {
                Some(oldest) => sessions.remove(&oldest),
                None => break,
            };
        }
        sessions.insert(id, capture.clone());
        Recorder {
            capture,
            limit: self.max_bytes_per_session,
        }
    }

    /// Every session kept, oldest first.
    pub fn sessions(&self) -> Vec<SessionView> {
        let sessions = lock(&self.sessions);
        sessions
            .iter()
            .map(|(id, capture)| {
                let capture = lock(capture);
                SessionView {
                    id: *id,
                    client: capture.client.to_string(),
                    server: capture.server.to_string(),
                    account: capture.account.clone(),
                    started_at: rfc3339(capture.started),
                    closed_at: capture.closed.map(rfc3339),
                    bytes: capture.bytes,
                    truncated: capture.truncated,
                }
            })
            .collect()
    }

    /// The pcap file of session `id` (all sessions if None); None if that session is not kept.
    pub fn pcap(&self, id: Option<u64>) -> Option<Vec<u8>> {
        // Copy what is needed, then write without holding any lock.
        let flows: Vec<Flow> = {
            let sessions = lock(&self.sessions);
            let chosen: Vec<&Arc<Mutex<SessionCapture>>> = match id {
                Some(id) => vec![sessions.get(&id)?],
                None => sessions.values().collect(),
            };
            chosen
                .into_iter()
                .map(|capture| {
                    let capture = lock(capture);
                    Flow {
                        client: capture.client,
                        server: capture.server,
                        started: capture.started,
                        closed: capture.closed,
                        chunks: capture.chunks.clone(),
                    }
                })
                .collect()
        };
        Some(write_pcap(&flows))
    }
}

/// Records one session's traffic; wrap its stream with [`Recorder::wrap`].
#[derive(Clone)]
pub struct Recorder {
    capture: Arc<Mutex<SessionCapture>>,
    limit: usize,
}

impl Recorder {
    pub fn wrap<S>(&self, inner: S) -> Recorded<S> {
        Recorded {
            inner,
            recorder: self.clone(),
        }
    }

    fn record(&self, from_client: bool, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        let mut capture = lock(&self.capture);
        if capture.truncated {
            return;
        }
        if capture.bytes + data.len() > self.limit {
            capture.truncated = true;
            return;
        }
        capture.bytes += data.len();
        capture.chunks.push(Chunk {
            at: SystemTime::now(),
            from_client,
            data: data.to_vec(),
        });
    }

    /// Names the account the session bound as.
    pub fn bound(&self, account: &str) {
        lock(&self.capture).account = Some(account.to_owned());
    }

    /// Marks the session closed (a FIN ends its flow in the pcap).
    pub fn closed(&self) {
        lock(&self.capture).closed = Some(SystemTime::now());
    }
}

/// A stream whose reads (client to simulator) and writes (simulator to client) are recorded.
pub struct Recorded<S> {
    inner: S,
    recorder: Recorder,
}

impl<S: AsyncRead + Unpin> AsyncRead for Recorded<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            self.recorder.record(true, &buf.filled()[before..]);
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Recorded<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(written)) = polled {
            self.recorder.record(false, &buf[..written]);
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// One session's traffic, copied out for writing.
struct Flow {
    client: SocketAddr,
    server: SocketAddr,
    started: SystemTime,
    closed: Option<SystemTime>,
    chunks: Vec<Chunk>,
}

const SYN: u8 = 0x02;
const FIN: u8 = 0x01;
const PSH: u8 = 0x08;
const ACK: u8 = 0x10;
/// TCP payload per synthesised segment: an IPv4 packet's length must fit 16 bits.
const MAX_SEGMENT: usize = 16_384;
/// Initial sequence numbers of the synthesised handshake.
const CLIENT_ISN: u32 = 1_000;
const SERVER_ISN: u32 = 500_000;

/// One packet to write: when, which flow, which way, flags, payload.
struct Packet<'a> {
    at: SystemTime,
    flow: usize,
    from_client: bool,
    flags: u8,
    payload: &'a [u8],
}

/// The pcap file (libpcap 2.4, microsecond timestamps, LINKTYPE_ETHERNET) of `flows`, their
/// packets merged in time order.
fn write_pcap(flows: &[Flow]) -> Vec<u8> {
    let mut packets: Vec<Packet<'_>> = Vec::new();
    for (index, flow) in flows.iter().enumerate() {
        let first = packets.len();
        let at = flow.started;
        for (from_client, flags) in [(true, SYN), (false, SYN | ACK), (true, ACK)] {
            packets.push(Packet {
                at,
                flow: index,
                from_client,
                flags,
                payload: &[],
            });
        }
        for chunk in &flow.chunks {
            for piece in chunk.data.chunks(MAX_SEGMENT) {
                packets.push(Packet {
                    at: chunk.at,
                    flow: index,
                    from_client: chunk.from_client,
                    flags: PSH | ACK,
                    payload: piece,
                });
            }
        }
        if let Some(at) = flow.closed {
            for from_client in [false, true] {
                packets.push(Packet {
                    at,
                    flow: index,
                    from_client,
                    flags: FIN | ACK,
                    payload: &[],
                });
            }
        }
        // A clock stepped back must not reorder one flow's packets.
        let mut latest = flow.started;
        for packet in &mut packets[first..] {
            latest = latest.max(packet.at);
            packet.at = latest;
        }
    }
    // Stable: within a flow, packets keep the order they happened in.
    packets.sort_by_key(|p| p.at);

    let mut out = Vec::new();
    out.extend_from_slice(&0xA1B2_C3D4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&0i32.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&65_535u32.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes());
    // (next sequence number client to server, server to client) per flow.
    let mut next: Vec<(u32, u32)> = vec![(CLIENT_ISN, SERVER_ISN); flows.len()];
    for packet in packets {
        let flow = &flows[packet.flow];
        let (client_next, server_next) = next[packet.flow];
        let (src, dst, seq, ack) = if packet.from_client {
            (flow.client, flow.server, client_next, server_next)
        } else {
            (flow.server, flow.client, server_next, client_next)
        };
        // SYN and FIN take one sequence number; the first SYN acknowledges nothing.
        let ack = if packet.flags == SYN { 0 } else { ack };
        let advance = packet.payload.len() as u32 + u32::from(packet.flags & (SYN | FIN) != 0);
        let frame = ethernet_frame(src, dst, seq, ack, packet.flags, packet.payload);
        let since = packet.at.duration_since(UNIX_EPOCH).unwrap_or_default();
        out.extend_from_slice(&(since.as_secs() as u32).to_le_bytes());
        out.extend_from_slice(&since.subsec_micros().to_le_bytes());
        out.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        out.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        out.extend_from_slice(&frame);
        let entry = &mut next[packet.flow];
        if packet.from_client {
            entry.0 = entry.0.wrapping_add(advance);
        } else {
            entry.1 = entry.1.wrapping_add(advance);
        }
    }
    out
}

/// Ethernet II + IP + TCP around `payload`.
fn ethernet_frame(
    src: SocketAddr,
    dst: SocketAddr,
    seq: u32,
    ack: u32,
    flags: u8,
    payload: &[u8],
) -> Vec<u8> {
    let mut tcp = Vec::with_capacity(20 + payload.len());
    tcp.extend_from_slice(&src.port().to_be_bytes());
    tcp.extend_from_slice(&dst.port().to_be_bytes());
    tcp.extend_from_slice(&seq.to_be_bytes());
    tcp.extend_from_slice(&ack.to_be_bytes());
    tcp.push(5 << 4); // data offset: 5 words, no options
    tcp.push(flags);
    tcp.extend_from_slice(&65_535u16.to_be_bytes()); // window
    tcp.extend_from_slice(&[0, 0, 0, 0]); // checksum (filled below), urgent pointer
    tcp.extend_from_slice(payload);

    let (src_ip, dst_ip) = match (src.ip(), dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => (IpAddr::V4(s), IpAddr::V4(d)),
        // Mixed families cannot share a header: show both as IPv6 (v4-mapped).
        (s, d) => (IpAddr::V6(to_v6(s)), IpAddr::V6(to_v6(d))),
    };
    let mut frame = Vec::with_capacity(14 + 40 + tcp.len());
    frame.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x02]); // destination MAC (locally administered)
    frame.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x01]); // source MAC
    match (src_ip, dst_ip) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let mut pseudo = Vec::with_capacity(12 + tcp.len());
            pseudo.extend_from_slice(&s.octets());
            pseudo.extend_from_slice(&d.octets());
            pseudo.extend_from_slice(&[0, 6]);
            pseudo.extend_from_slice(&(tcp.len() as u16).to_be_bytes());
            pseudo.extend_from_slice(&tcp);
            let sum = checksum(&pseudo);
            tcp[16..18].copy_from_slice(&sum.to_be_bytes());
            frame.extend_from_slice(&0x0800u16.to_be_bytes());
            let mut ip = Vec::with_capacity(20);
            ip.push(0x45);
            ip.push(0);
            ip.extend_from_slice(&((20 + tcp.len()) as u16).to_be_bytes());
            ip.extend_from_slice(&[0, 0, 0x40, 0]); // id, don't fragment
            ip.push(64); // TTL
            ip.push(6); // TCP
            ip.extend_from_slice(&[0, 0]);
            ip.extend_from_slice(&s.octets());
            ip.extend_from_slice(&d.octets());
            let sum = checksum(&ip);
            ip[10..12].copy_from_slice(&sum.to_be_bytes());
            frame.extend_from_slice(&ip);
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let mut pseudo = Vec::with_capacity(40 + tcp.len());
            pseudo.extend_from_slice(&s.octets());
            pseudo.extend_from_slice(&d.octets());
            pseudo.extend_from_slice(&(tcp.len() as u32).to_be_bytes());
            pseudo.extend_from_slice(&[0, 0, 0, 6]);
            pseudo.extend_from_slice(&tcp);
            let sum = checksum(&pseudo);
            tcp[16..18].copy_from_slice(&sum.to_be_bytes());
            frame.extend_from_slice(&0x86DDu16.to_be_bytes());
            frame.extend_from_slice(&[0x60, 0, 0, 0]);
            frame.extend_from_slice(&(tcp.len() as u16).to_be_bytes());
            frame.push(6); // next header: TCP
            frame.push(64); // hop limit
            frame.extend_from_slice(&s.octets());
            frame.extend_from_slice(&d.octets());
        }
        _ => unreachable!("both addresses were made the same family above"),
    }
    frame.extend_from_slice(&tcp);
    frame
}

fn to_v6(ip: IpAddr) -> std::net::Ipv6Addr {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

/// The Internet checksum (RFC 1071).
fn checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = bytes
        .chunks(2)
        .map(|pair| u32::from(u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xFFFF {
        sum = (sum & 0xFFFF) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_checksum_of_a_known_ipv4_header() {
        // RFC 1071's example header from Wikipedia's "IPv4 header checksum".
        let header = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(checksum(&header), 0xb861);
    }

    #[test]
    fn sequence_numbers_follow_the_bytes_each_way() {
        let captures = Captures::new(1 << 20, 4);
        let client: SocketAddr = "127.0.0.1:40000".parse().expect("literal");
        let server: SocketAddr = "127.0.0.1:2775".parse().expect("literal");
        let recorder = captures.open(7, client, server);
        recorder.record(true, b"abcd");
        recorder.record(false, b"xy");
        recorder.record(true, b"e");
        recorder.closed();
        let pcap = captures.pcap(Some(7)).expect("kept");
        assert!(captures.pcap(Some(8)).is_none());
        // Walk the records: (seq, ack, flags, payload length) of each TCP segment.
        let mut at = 24;
        let mut segments = Vec::new();
        while at < pcap.len() {
            let length = u32::from_le_bytes(pcap[at + 8..at + 12].try_into().expect("4")) as usize;
            let frame = &pcap[at + 16..at + 16 + length];
            let tcp = &frame[14 + 20..];
            let seq = u32::from_be_bytes(tcp[4..8].try_into().expect("4"));
            let ack = u32::from_be_bytes(tcp[8..12].try_into().expect("4"));
            segments.push((seq, ack, tcp[13], tcp.len() - 20));
            at += 16 + length;
        }
        assert_eq!(
            segments,
            [
                (1000, 0, SYN, 0),
                (500_000, 1001, SYN | ACK, 0),
                (1001, 500_001, ACK, 0),
                (1001, 500_001, PSH | ACK, 4),
                (500_001, 1005, PSH | ACK, 2),
                (1005, 500_003, PSH | ACK, 1),
                (500_003, 1006, FIN | ACK, 0),
                (1006, 500_004, FIN | ACK, 0),
            ]
        );
    }

    #[test]
    fn recording_stops_at_the_limit_and_old_sessions_go() {
        let captures = Captures::new(5, 2);
        let addr: SocketAddr = "127.0.0.1:1".parse().expect("literal");
        let first = captures.open(1, addr, addr);
        first.record(true, b"1234");
        first.record(true, b"56");
        first.closed();
        captures.open(2, addr, addr);
        captures.open(3, addr, addr);
        let sessions = captures.sessions();
        assert_eq!(
            sessions.iter().map(|s| s.id).collect::<Vec<_>>(),
            [2, 3],
            "the closed session went first"
        );
        let captures = Captures::new(5, 2);
        let only = captures.open(1, addr, addr);
        only.record(true, b"1234");
        only.record(true, b"56");
        let view = &captures.sessions()[0];
        assert_eq!((view.bytes, view.truncated), (4, true));
    }
}
