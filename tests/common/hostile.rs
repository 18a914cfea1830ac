//! A scriptable hostile SMSC on 127.0.0.1:0: a test accepts the daemon's connections one by one
//! and decides, PDU by PDU, what the SMSC answers, withholds, lies about or floods. It reads
//! frames by `command_length` itself and writes raw bytes, so it can also send what no codec
//! would build (a body that does not decode, a `system_id` over the spec's limit). Every frame the
//! daemon sends is recorded with its connection, time and sequence_number.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use rusmpp::decode::DecodeWithLength;
use rusmpp::{Command, CommandStatus};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};

use super::PATIENCE;

/// command_id values (SMPP 3.4 section 5.1.2.1).
pub mod id {
    pub const GENERIC_NACK: u32 = 0x8000_0000;
    pub const BIND_RECEIVER: u32 = 0x0000_0001;
    pub const BIND_TRANSMITTER: u32 = 0x0000_0002;
    pub const SUBMIT_SM: u32 = 0x0000_0004;
    pub const SUBMIT_SM_RESP: u32 = 0x8000_0004;
    pub const DELIVER_SM: u32 = 0x0000_0005;
    pub const DELIVER_SM_RESP: u32 = 0x8000_0005;
    pub const UNBIND: u32 = 0x0000_0006;
    pub const UNBIND_RESP: u32 = 0x8000_0006;
    pub const BIND_TRANSCEIVER: u32 = 0x0000_0009;
    pub const ENQUIRE_LINK: u32 = 0x0000_0015;
    pub const ENQUIRE_LINK_RESP: u32 = 0x8000_0015;
    pub const ALERT_NOTIFICATION: u32 = 0x0000_0102;
    pub const DATA_SM: u32 = 0x0000_0103;
    pub const DATA_SM_RESP: u32 = 0x8000_0103;

    /// Whether `command_id` is a bind request.
    pub fn is_bind(command_id: u32) -> bool {
        matches!(
            command_id,
            BIND_RECEIVER | BIND_TRANSMITTER | BIND_TRANSCEIVER
        )
    }
}

/// TLV tags the SMSC sends (SMPP 3.4 section 5.3.2).
pub mod tag {
    pub const RECEIPTED_MESSAGE_ID: u16 = 0x001E;
    pub const MESSAGE_STATE: u16 = 0x0427;
    pub const MESSAGE_PAYLOAD: u16 = 0x0424;
    pub const SC_INTERFACE_VERSION: u16 = 0x0210;
}

/// message_state values (SMPP 3.4 section 5.2.28).
pub mod message_state {
    pub const DELIVERED: u8 = 2;
    pub const UNDELIVERABLE: u8 = 5;
}

/// The largest frame the SMSC reads; a longer `command_length` closes the connection.
const MAX_FRAME: usize = 1 << 20;

/// How the SMSC listens and what it does without being asked.
#[derive(Debug, Clone, Default)]
pub struct HostileOptions {
    /// SO_RCVBUF for the listener (inherited by accepted sockets).
    pub recv_buffer: Option<usize>,
    /// TCP_MAXSEG for the listener: the MSS the SMSC advertises. A small one keeps the daemon's
    /// send buffer from growing to megabytes (the kernel sizes it by segments in flight), so a
    /// stall fills it after kilobytes.
    pub mss: Option<u32>,
    /// Answer every bind with OK at once (the script still sees the bind).
    pub auto_bind: bool,
}

/// One frame the daemon sent.
#[derive(Debug, Clone)]
pub struct Received {
    /// The connection it came on: 0, 1, ... in accept order.
    pub connection: usize,
    pub at: Instant,
    pub command_id: u32,
    pub command_status: u32,
    pub sequence_number: u32,
    /// The whole frame, header included.
    pub raw: Vec<u8>,
}

impl Received {
    pub fn body(&self) -> &[u8] {
        &self.raw[16..]
    }

    /// The frame decoded by rusmpp, when it decodes.
    pub fn command(&self) -> Option<Command> {
        let mut buf = BytesMut::from(&self.raw[4..]);
        Command::decode(&mut buf, self.raw.len() - 4)
            .ok()
            .map(|(command, _)| command)
    }

    pub fn is_response(&self) -> bool {
        self.command_id & 0x8000_0000 != 0
    }

    /// The submit_sm fields tests look at, when this is a submit_sm that parses.
    pub fn submit(&self) -> Option<Submit> {
        (self.command_id == id::SUBMIT_SM)
            .then(|| Submit::parse(self))
            .flatten()
    }
}

/// A submit_sm as the SMSC saw it.
#[derive(Debug, Clone)]
pub struct Submit {
    pub connection: usize,
    pub at: Instant,
    pub seq: u32,
    /// destination_addr as written (digits, no '+').
    pub destination: String,
    pub esm_class: u8,
    pub registered_delivery: u8,
    pub data_coding: u8,
    /// validity_period as written; empty when none was sent.
    pub validity_period: String,
    /// short_message, or the message_payload TLV when short_message is empty.
    pub user_data: Vec<u8>,
}

/// A reader over a body that answers None instead of panicking on a short frame.
struct Fields<'a>(&'a [u8]);

impl Fields<'_> {
    fn u8(&mut self) -> Option<u8> {
        let (&first, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(first)
    }

    fn c_string(&mut self) -> Option<String> {
        let end = self.0.iter().position(|&b| b == 0)?;
        let value = String::from_utf8_lossy(&self.0[..end]).into_owned();
        self.0 = &self.0[end + 1..];
        Some(value)
    }

    fn take(&mut self, n: usize) -> Option<Vec<u8>> {
        if self.0.len() < n {
            return None;
        }
        let (value, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(value.to_vec())
    }

    fn u16(&mut self) -> Option<u16> {
        let bytes = self.take(2)?;
        Some(u16::from_be_bytes([bytes[0], bytes[1]]))
    }
}

impl Submit {
    fn parse(frame: &Received) -> Option<Self> {
        let mut f = Fields(frame.body());
        let _service_type = f.c_string()?;
        let _source_ton = f.u8()?;
        let _source_npi = f.u8()?;
        let _source = f.c_string()?;
        let _dest_ton = f.u8()?;
        let _dest_npi = f.u8()?;
        let destination = f.c_string()?;
        let esm_class = f.u8()?;
        let _protocol_id = f.u8()?;
        let _priority = f.u8()?;
        let _schedule = f.c_string()?;
        let validity_period = f.c_string()?;
        let registered_delivery = f.u8()?;
        let _replace = f.u8()?;
        let data_coding = f.u8()?;
        let _default_msg_id = f.u8()?;
        let length = f.u8()?;
        let mut user_data = f.take(usize::from(length))?;
        while let (Some(tag), Some(length)) = (f.u16(), f.u16()) {
            let value = f.take(usize::from(length))?;
            if tag == tag::MESSAGE_PAYLOAD && user_data.is_empty() {
                user_data = value;
            }
        }
        Some(Self {
            connection: frame.connection,
            at: frame.at,
            seq: frame.sequence_number,
            destination,
            esm_class,
            registered_delivery,
            data_coding,
            validity_period,
            user_data,
        })
    }

    /// The text, for data_coding 0 (as ASCII, which digits and Latin letters are in GSM 03.38
    /// unpacked), 3 (Latin-1) and 8 (UCS-2).
    pub fn text(&self) -> String {
        match self.data_coding {
            8 => String::from_utf16_lossy(
                &self
                    .user_data
                    .chunks_exact(2)
                    .map(|pair| u16::from_be_bytes([pair[0], pair[1]]))
                    .collect::<Vec<_>>(),
            ),
            _ => self.user_data.iter().map(|&b| char::from(b)).collect(),
        }
    }

    /// The first run of `length` digits in the text: the code of an OTP SMS.
    pub fn code(&self, length: usize) -> Option<String> {
        let text = self.text();
        let digits: Vec<char> = text.chars().collect();
        digits
            .windows(length)
            .enumerate()
            .find(|(at, window)| {
                window.iter().all(char::is_ascii_digit)
                    && (*at == 0 || !digits[at - 1].is_ascii_digit())
                    && digits.get(at + length).is_none_or(|c| !c.is_ascii_digit())
            })
            .map(|(_, window)| window.iter().collect())
    }
}

/// Seconds in an SMPP relative time (`YYMMDDhhmmsstnnR`, SMPP 3.4 section 7.1.1.2), counting a
/// year as 365 days and a month as 30; None when `value` is not in the relative form.
pub fn relative_seconds(value: &str) -> Option<u64> {
    let bytes = value.as_bytes();
    if bytes.len() != 16 || bytes[15] != b'R' || !bytes[..15].iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = |at: usize| u64::from(bytes[at] - b'0') * 10 + u64::from(bytes[at + 1] - b'0');
    Some(
        n(0) * 365 * 86_400 + n(2) * 30 * 86_400 + n(4) * 86_400 + n(6) * 3_600 + n(8) * 60 + n(10),
    )
}

/// A whole frame: header (length, command_id, command_status, sequence_number) and `body`.
pub fn frame(command_id: u32, command_status: u32, sequence_number: u32, body: &[u8]) -> Vec<u8> {
    let length = u32::try_from(16 + body.len()).expect("test frames are small");
    let mut frame = Vec::with_capacity(16 + body.len());
    frame.extend_from_slice(&length.to_be_bytes());
    frame.extend_from_slice(&command_id.to_be_bytes());
    frame.extend_from_slice(&command_status.to_be_bytes());
    frame.extend_from_slice(&sequence_number.to_be_bytes());
    frame.extend_from_slice(body);
    frame
}

/// One TLV: tag, length, value.
pub fn tlv(tag: u16, value: &[u8]) -> Vec<u8> {
    let length = u16::try_from(value.len()).expect("test TLVs are small");
    let mut out = Vec::with_capacity(4 + value.len());
    out.extend_from_slice(&tag.to_be_bytes());
    out.extend_from_slice(&length.to_be_bytes());
    out.extend_from_slice(value);
    out
}

/// A C-Octet String: the bytes and a NUL.
pub fn c_string(value: &str) -> Vec<u8> {
    let mut out = value.as_bytes().to_vec();
    out.push(0);
    out
}

/// UCS-2 (UTF-16 big-endian), as data_coding 8 carries text.
pub fn ucs2(text: &str) -> Vec<u8> {
    text.encode_utf16().flat_map(u16::to_be_bytes).collect()
}

/// The de-facto receipt text (SMPP 3.4 appendix B) for `id` in state `stat`.
pub fn receipt_text(id: &str, stat: &str) -> String {
    let delivered = if stat == "DELIVRD" { "001" } else { "000" };
    let err = if stat == "DELIVRD" { "000" } else { "001" };
    format!(
        "id:{id} sub:001 dlvrd:{delivered} submit date:2501011200 done date:2501011201 stat:{stat} err:{err} text:"
    )
}

/// A deliver_sm body from 31600000000 to OTPGATE.
pub fn deliver_sm_body(
    esm_class: u8,
    data_coding: u8,
    short_message: &[u8],
    tlvs: &[u8],
) -> Vec<u8> {
    let length = u8::try_from(short_message.len()).expect("short_message fits 254 octets");
    let mut body = Vec::new();
    body.extend(c_string("")); // service_type
    body.extend([1, 1]);
    body.extend(c_string("31600000000"));
    body.extend([5, 0]);
    body.extend(c_string("OTPGATE"));
    body.extend([esm_class, 0, 0]); // esm_class, protocol_id, priority_flag
    body.extend(c_string("")); // schedule_delivery_time
    body.extend(c_string("")); // validity_period
    body.extend([0, 0, data_coding, 0, length]);
    body.extend_from_slice(short_message);
    body.extend_from_slice(tlvs);
    body
}

/// A data_sm body from 31600000000 to OTPGATE.
pub fn data_sm_body(esm_class: u8, data_coding: u8, tlvs: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend(c_string(""));
    body.extend([1, 1]);
    body.extend(c_string("31600000000"));
    body.extend([5, 0]);
    body.extend(c_string("OTPGATE"));
    body.extend([esm_class, 0, data_coding]);
    body.extend_from_slice(tlvs);
    body
}

/// What the writer task does next.
enum Out {
    Bytes(Vec<u8>),
    /// Shut the write half down (FIN) after everything before it.
    Finish,
}

type Log = Arc<Mutex<Vec<Received>>>;

/// The SMSC: its listener, every frame received on any connection, and the connections not
/// yet taken by the script.
pub struct Hostile {
    pub addr: SocketAddr,
    log: Log,
    incoming: tokio::sync::Mutex<mpsc::UnboundedReceiver<Peer>>,
    accepted: Arc<AtomicUsize>,
    acceptor: tokio::task::AbortHandle,
}

impl Drop for Hostile {
    fn drop(&mut self) {
        self.acceptor.abort();
    }
}

impl Hostile {
    pub async fn start() -> Self {
        Self::start_with(HostileOptions::default()).await
    }

    pub async fn start_with(options: HostileOptions) -> Self {
        let socket = socket2::Socket::new(
            socket2::Domain::IPV4,
            socket2::Type::STREAM,
            Some(socket2::Protocol::TCP),
        )
        .expect("TCP socket");
        if let Some(size) = options.recv_buffer {
            socket.set_recv_buffer_size(size).expect("SO_RCVBUF");
        }
        if let Some(mss) = options.mss {
            socket.set_tcp_mss(mss).expect("TCP_MAXSEG");
        }
        let any: SocketAddr = "127.0.0.1:0".parse().expect("literal address");
        socket.bind(&any.into()).expect("bind hostile SMSC");
        socket.listen(16).expect("listen");
        socket.set_nonblocking(true).expect("non-blocking");
        let listener = TcpListener::from_std(socket.into()).expect("tokio listener");
        let addr = listener.local_addr().expect("local addr");
        let log: Log = Arc::default();
        let accepted = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = mpsc::unbounded_channel();
        let (task_log, task_accepted) = (log.clone(), accepted.clone());
        let acceptor = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let number = task_accepted.fetch_add(1, Ordering::SeqCst);
                let peer = Peer::spawn(stream, number, task_log.clone(), options.auto_bind);
                if tx.send(peer).is_err() {
                    break;
                }
            }
        })
        .abort_handle();
        Self {
            addr,
            log,
            incoming: tokio::sync::Mutex::new(rx),
            accepted,
            acceptor,
        }
    }

    /// The next connection from the daemon; panics when none comes within PATIENCE.
    pub async fn accept(&self) -> Peer {
        self.accept_within(PATIENCE)
            .await
            .unwrap_or_else(|| panic!("the daemon did not connect within {PATIENCE:?}"))
    }

    /// The next connection, if one comes within `wait`.
    pub async fn accept_within(&self, wait: Duration) -> Option<Peer> {
        let mut incoming = self.incoming.lock().await;
        tokio::time::timeout(wait, incoming.recv())
            .await
            .ok()
            .flatten()
    }

    /// Connections accepted so far (taken by the script or not).
    pub fn connections(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Every frame the daemon sent, on every connection, in arrival order.
    pub fn received(&self) -> Vec<Received> {
        self.log.lock().expect("log lock").clone()
    }

    /// Every submit_sm the daemon sent, on every connection, in arrival order.
    pub fn submits(&self) -> Vec<Submit> {
        self.received()
            .iter()
            .filter_map(Received::submit)
            .collect()
    }

    /// Submits to `destination` (digits, no '+').
    pub fn submits_to(&self, destination: &str) -> Vec<Submit> {
        self.submits()
            .into_iter()
            .filter(|s| s.destination == destination)
            .collect()
    }
}

/// One connection from the daemon. Dropping it drops the connection.
pub struct Peer {
    pub connection: usize,
    frames: mpsc::UnboundedReceiver<Received>,
    out: mpsc::UnboundedSender<Out>,
    reading: watch::Sender<bool>,
    closed: watch::Receiver<bool>,
    auto_enquire_link: Arc<AtomicBool>,
    log: Log,
    next_seq: AtomicU32,
    tasks: [tokio::task::AbortHandle; 2],
}

impl Drop for Peer {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Reads one frame by its command_length; None at EOF, on an error or an impossible length.
async fn read_frame(reader: &mut OwnedReadHalf) -> Option<Vec<u8>> {
    let mut length = [0u8; 4];
    reader.read_exact(&mut length).await.ok()?;
    let total = u32::from_be_bytes(length) as usize;
    if !(16..=MAX_FRAME).contains(&total) {
        return None;
    }
    let mut frame = vec![0u8; total];
    frame[..4].copy_from_slice(&length);
    reader.read_exact(&mut frame[4..]).await.ok()?;
    Some(frame)
}

fn word(frame: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([frame[at], frame[at + 1], frame[at + 2], frame[at + 3]])
}

/// A bind response body: `system_id` and the sc_interface_version TLV (3.4).
fn bind_resp_body(system_id: &str) -> Vec<u8> {
    let mut body = c_string(system_id);
    body.extend(tlv(tag::SC_INTERFACE_VERSION, &[0x34]));
    body
}

impl Peer {
    fn spawn(stream: TcpStream, connection: usize, log: Log, auto_bind: bool) -> Self {
        let _ = stream.set_nodelay(true);
        let (mut reader, mut writer): (OwnedReadHalf, OwnedWriteHalf) = stream.into_split();
        let (frames_tx, frames) = mpsc::unbounded_channel();
        let (out, mut out_rx) = mpsc::unbounded_channel::<Out>();
        let (reading, mut reading_rx) = watch::channel(true);
        let (closed_tx, closed) = watch::channel(false);
        let auto_enquire_link = Arc::new(AtomicBool::new(true));
        let (auto_el, task_log, answers) = (auto_enquire_link.clone(), log.clone(), out.clone());
        let read_task = tokio::spawn(async move {
            loop {
                // Stopped reading: what the daemon writes stays in the kernel's buffers. (A read
                // already waiting when the script stops takes one more frame.)
                if reading_rx.wait_for(|on| *on).await.is_err() {
                    break;
                }
                let Some(raw) = read_frame(&mut reader).await else {
                    break;
                };
                let received = Received {
                    connection,
                    at: Instant::now(),
                    command_id: word(&raw, 4),
                    command_status: word(&raw, 8),
                    sequence_number: word(&raw, 12),
                    raw,
                };
                let seq = received.sequence_number;
                if received.command_id == id::ENQUIRE_LINK && auto_el.load(Ordering::SeqCst) {
                    let _ = answers.send(Out::Bytes(frame(id::ENQUIRE_LINK_RESP, 0, seq, &[])));
                }
                // As any SMSC does, so that a daemon shutting down need not wait for its
                // unbind_timeout.
                if received.command_id == id::UNBIND {
                    let _ = answers.send(Out::Bytes(frame(id::UNBIND_RESP, 0, seq, &[])));
                }
                if auto_bind && id::is_bind(received.command_id) {
                    let resp = frame(
                        received.command_id | 0x8000_0000,
                        0,
                        seq,
                        &bind_resp_body("hostile"),
                    );
                    let _ = answers.send(Out::Bytes(resp));
                }
                task_log.lock().expect("log lock").push(received.clone());
                let _ = frames_tx.send(received);
            }
            let _ = closed_tx.send(true);
        });
        let write_task = tokio::spawn(async move {
            while let Some(item) = out_rx.recv().await {
                match item {
                    Out::Bytes(bytes) => {
                        if writer.write_all(&bytes).await.is_err() {
                            break;
                        }
                    }
                    Out::Finish => {
                        let _ = writer.shutdown().await;
                        break;
                    }
                }
            }
            // Keep the write half (and so the socket) open until the peer is dropped.
            std::future::pending::<()>().await;
            drop(writer);
        });
        Self {
            connection,
            frames,
            out,
            reading,
            closed,
            auto_enquire_link,
            log,
            next_seq: AtomicU32::new(1_000),
            tasks: [read_task.abort_handle(), write_task.abort_handle()],
        }
    }

    // ---- reading what the daemon sent ----------------------------------------------------

    /// The next frame from the daemon; panics when none comes within PATIENCE.
    pub async fn next(&mut self) -> Received {
        match self.next_within(PATIENCE).await {
            Some(frame) => frame,
            None => panic!(
                "connection {}: no frame from the daemon within {PATIENCE:?}; so far: {}",
                self.connection,
                self.summary()
            ),
        }
    }

    /// The next frame from the daemon, if one comes within `wait` (None also when it closed).
    pub async fn next_within(&mut self, wait: Duration) -> Option<Received> {
        tokio::time::timeout(wait, self.frames.recv())
            .await
            .ok()
            .flatten()
    }

    /// The next frame with `command_id`, skipping others (they stay in the log).
    pub async fn next_of(&mut self, command_id: u32) -> Received {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next_within(left).await {
                Some(frame) if frame.command_id == command_id => return frame,
                Some(_) => {}
                None => panic!(
                    "connection {}: no frame {command_id:#010x} within {PATIENCE:?}; so far: {}",
                    self.connection,
                    self.summary()
                ),
            }
        }
    }

    /// The next submit_sm.
    pub async fn next_submit(&mut self) -> Submit {
        self.next_of(id::SUBMIT_SM)
            .await
            .submit()
            .expect("the daemon's submit_sm parses")
    }

    /// The next submit_sm, if one comes within `wait`.
    pub async fn next_submit_within(&mut self, wait: Duration) -> Option<Submit> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let frame = self.next_within(left).await?;
            if let Some(submit) = frame.submit() {
                return Some(submit);
            }
        }
    }

    /// The next response frame (any command_id, generic_nack included) to our request `seq`.
    pub async fn response_to(&mut self, seq: u32) -> Received {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next_within(left).await {
                Some(frame) if frame.is_response() && frame.sequence_number == seq => return frame,
                Some(_) => {}
                None => panic!(
                    "connection {}: no response to sequence_number {seq} within {PATIENCE:?}; so far: {}",
                    self.connection,
                    self.summary()
                ),
            }
        }
    }

    /// Every frame received on this connection so far.
    pub fn log(&self) -> Vec<Received> {
        self.log
            .lock()
            .expect("log lock")
            .iter()
            .filter(|f| f.connection == self.connection)
            .cloned()
            .collect()
    }

    /// `command_id/seq` of every frame so far, for failure messages.
    pub fn summary(&self) -> String {
        self.log()
            .iter()
            .map(|f| format!("{:#x}/{}", f.command_id, f.sequence_number))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Waits until the daemon closes the connection (EOF or error on read); false when it is
    /// still open after `wait`. Only seen while reading.
    pub async fn closed_within(&self, wait: Duration) -> bool {
        let mut closed = self.closed.clone();
        tokio::time::timeout(wait, closed.wait_for(|c| *c))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    // ---- what the SMSC does ---------------------------------------------------------------

    /// Stops reading: the daemon's writes fill the socket buffers and then block.
    pub fn stop_reading(&self) {
        self.reading.send_replace(false);
    }

    pub fn resume_reading(&self) {
        self.reading.send_replace(true);
    }

    /// Whether enquire_link is answered without the script (on by default).
    pub fn set_auto_enquire_link(&self, on: bool) {
        self.auto_enquire_link.store(on, Ordering::SeqCst);
    }

    /// Closes the connection now, as a crash or a cut cable would.
    pub fn close(self) {
        drop(self);
    }

    /// Sends FIN after what was written so far; reading goes on.
    pub fn finish(&self) {
        let _ = self.out.send(Out::Finish);
    }

    /// Writes `bytes` as they are (queued behind earlier writes; never blocks the script).
    pub fn write_raw(&self, bytes: Vec<u8>) {
        let _ = self.out.send(Out::Bytes(bytes));
    }

    /// A sequence_number for a request of ours.
    pub fn sequence(&self) -> u32 {
        self.next_seq.fetch_add(1, Ordering::SeqCst)
    }

    /// Sends request `command_id` with `body`; returns its sequence_number.
    pub fn request(&self, command_id: u32, body: &[u8]) -> u32 {
        let seq = self.sequence();
        self.write_raw(frame(command_id, 0, seq, body));
        seq
    }

    /// Waits for a bind and answers it OK with system_id "hostile"; returns the bind.
    pub async fn answer_bind(&mut self) -> Received {
        self.answer_bind_with(CommandStatus::EsmeRok, "hostile")
            .await
    }

    /// Waits for a bind and answers it with `status` and `system_id` (any length: the spec's
    /// limit is 16 octets with the NUL, real SMSCs exceed it).
    pub async fn answer_bind_with(&mut self, status: CommandStatus, system_id: &str) -> Received {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        let bind = loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next_within(left).await {
                Some(frame) if id::is_bind(frame.command_id) => break frame,
                Some(_) => {}
                None => panic!(
                    "connection {}: no bind within {PATIENCE:?}",
                    self.connection
                ),
            }
        };
        let body = if status == CommandStatus::EsmeRok {
            bind_resp_body(system_id)
        } else {
            Vec::new()
        };
        self.write_raw(frame(
            bind.command_id | 0x8000_0000,
            u32::from(status),
            bind.sequence_number,
            &body,
        ));
        bind
    }

    /// A submit_sm_resp with `status` and `message_id` in its body.
    pub fn respond(&self, seq: u32, status: CommandStatus, message_id: &str) {
        self.write_raw(frame(
            id::SUBMIT_SM_RESP,
            u32::from(status),
            seq,
            &c_string(message_id),
        ));
    }

    /// An OK submit_sm_resp naming `message_id`.
    pub fn accept(&self, seq: u32, message_id: &str) {
        self.respond(seq, CommandStatus::EsmeRok, message_id);
    }

    /// A header-only error submit_sm_resp, as SMPP 3.4 section 4.4.2 has it.
    pub fn refuse(&self, seq: u32, status: CommandStatus) {
        self.write_raw(frame(id::SUBMIT_SM_RESP, u32::from(status), seq, &[]));
    }

    /// A response frame with any command_id, status and body (one that does not decode, say).
    pub fn respond_raw(&self, command_id: u32, status: u32, seq: u32, body: &[u8]) {
        self.write_raw(frame(command_id, status, seq, body));
    }

    /// A deliver_sm; returns its sequence_number.
    pub fn deliver_sm(
        &self,
        esm_class: u8,
        data_coding: u8,
        short_message: &[u8],
        tlvs: &[u8],
    ) -> u32 {
        self.request(
            id::DELIVER_SM,
            &deliver_sm_body(esm_class, data_coding, short_message, tlvs),
        )
    }

    /// A receipt for `message_id` in state `stat` (`DELIVRD`, `UNDELIV`, ...) as text only, the
    /// way many carriers send it.
    pub fn deliver_receipt(&self, message_id: &str, stat: &str) -> u32 {
        self.deliver_receipt_text(&receipt_text(message_id, stat))
    }

    /// A receipt (esm_class 0x04, data_coding 0) whose short_message is `text`.
    pub fn deliver_receipt_text(&self, text: &str) -> u32 {
        self.deliver_sm(0x04, 0, text.as_bytes(), &[])
    }

    /// A receipt in data_sm: receipted_message_id and message_state TLVs, esm_class 0x04.
    pub fn data_sm_receipt(&self, message_id: &str, state: u8) -> u32 {
        let mut tlvs = tlv(tag::RECEIPTED_MESSAGE_ID, &c_string(message_id));
        tlvs.extend(tlv(tag::MESSAGE_STATE, &[state]));
        self.request(id::DATA_SM, &data_sm_body(0x04, 0, &tlvs))
    }

    /// An alert_notification (which takes no response).
    pub fn alert_notification(&self) -> u32 {
        let mut body = vec![1, 1];
        body.extend(c_string("31600000000"));
        body.extend([5, 0]);
        body.extend(c_string("OTPGATE"));
        self.request(id::ALERT_NOTIFICATION, &body)
    }

    pub fn enquire_link(&self) -> u32 {
        self.request(id::ENQUIRE_LINK, &[])
    }

    /// Sends `count` mobile-originated deliver_sm at once (one write), each wanting a
    /// deliver_sm_resp.
    pub fn flood_deliver_sm(&self, count: usize) {
        let body = deliver_sm_body(0, 0, b"flood", &[]);
        let mut bytes = Vec::with_capacity(count * (16 + body.len()));
        for _ in 0..count {
            bytes.extend(frame(id::DELIVER_SM, 0, self.sequence(), &body));
        }
        self.write_raw(bytes);
    }
}
