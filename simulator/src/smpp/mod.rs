//! The SMPP side: accept loop and one task per ESME session. A session reads frames, answers
//! them (now, or later under a latency fault), and writes what the rest of the simulator hands it
//! (receipts, MO) through its outbound channel. Writes are batched: every frame already buffered
//! is answered before one flush.

mod handle;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures_util::{FutureExt, SinkExt, StreamExt};
use rusmpp::{Command, CommandId, CommandStatus, Pdu};
use smpp_wire::{Frame, FrameCodec};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_util::codec::Framed;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tokio_util::time::DelayQueue;
use tracing::{debug, info, warn};

use crate::Shared;
use crate::config::BindType;
use crate::faults::Active;
use crate::receipt::Job;
use crate::registry::Outbound;

/// Receipts and MO waiting for one session; beyond this the scheduler retries later.
const OUTBOUND_CAPACITY: usize = 4096;

/// Accepts ESME connections until `shutdown`; each session runs on `tracker`. With `tls`, every
/// connection is a TLS handshake first.
pub async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    tls: Option<TlsAcceptor>,
) {
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    if let Err(err) = stream.set_nodelay(true) {
                        warn!(%peer, %err, "cannot set TCP_NODELAY");
                    }
                    // The address the ESME reached (the listener's may be unspecified).
                    let local = stream
                        .local_addr()
                        .or_else(|_| listener.local_addr())
                        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
                    let (shared, shutdown) = (shared.clone(), shutdown.clone());
                    match tls.clone() {
                        None => {
                            tracker.spawn(run(shared, stream, peer, local, shutdown));
                        }
                        Some(acceptor) => {
                            tracker.spawn(async move {
                                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                                    Ok(Ok(stream)) => run(shared, stream, peer, local, shutdown).await,
                                    Ok(Err(err)) => warn!(%peer, %err, "TLS handshake failed"),
                                    Err(_) => warn!(%peer, "TLS handshake timed out"),
                                }
                            });
                        }
                    }
                }
                Err(err) => {
                    // Out of file descriptors and the like: pause instead of spinning.
                    warn!(%err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = shutdown.cancelled() => break,
        }
    }
}

/// A TLS client gets this long to finish its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A deliver_sm out and unanswered: the receipt it carries (None for an MO) and when its slot
/// is freed without an answer.
struct Awaiting {
    job: Option<Box<Job>>,
    deadline: tokio::time::Instant,
}

/// The bound state of a session.
struct Bound {
    account: String,
    bind_type: BindType,
}

/// What handling one PDU produced.
enum Reply {
    None,
    Send(Command),
    /// Answer, then close the connection (unbind).
    SendAndClose(Command),
    /// Close without answering (the ESME answered our unbind).
    Close,
}

/// Requests read (and not answered) while paused for receipts to drain, at most.
const HELD_MAX: usize = 4096;

/// Whether `frame` answers one of the simulator's requests.
fn is_response(frame: &Frame) -> bool {
    let id = match frame {
        Frame::Command(command) => command.id(),
        Frame::Malformed { command_id, .. } => *command_id,
    };
    u32::from(id) & 0x8000_0000 != 0
}

/// How long an ESME has to answer the simulator's unbind.
const UNBIND_TIMEOUT: Duration = Duration::from_secs(2);

struct Session {
    shared: Arc<Shared>,
    peer: SocketAddr,
    id: u64,
    recorder: crate::capture::Recorder,
    bound: Option<Bound>,
    outbound_tx: mpsc::Sender<Outbound>,
    kill: CancellationToken,
    sequence: u32,
    /// Faults in force for this session, re-read when the faults' generation moves.
    faults: Arc<Active>,
    faults_seen: u64,
    /// PDUs answered since the faults last changed (for drop_after_pdus).
    answered: u64,
    /// deliver_sm written to the ESME and not yet answered, by sequence_number: the window.
    awaiting_ack: HashMap<u32, Awaiting>,
    /// The unbind this session sent and when it gives up waiting for the answer.
    unbinding: Option<(u32, tokio::time::Instant)>,
    /// Start of the current one-second throttle window and the submits in it.
    window_start: Instant,
    window_submits: u32,
}

async fn run<S>(
    shared: Arc<Shared>,
    stream: S,
    peer: SocketAddr,
    local: SocketAddr,
    shutdown: CancellationToken,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let (outbound_tx, mut outbound_rx) = mpsc::channel(OUTBOUND_CAPACITY);
    let id = shared.registry.next_id();
    // SMPP as it crossed the socket (inside TLS, for a TLS listener), for the pcap export.
    let recorder = shared.captures.open(id, peer, local);
    let stream = recorder.wrap(stream);
    let mut session = Session {
        faults_seen: shared.faults.generation(),
        faults: shared.faults.for_account(None),
        id,
        recorder,
        shared,
        peer,
        bound: None,
        outbound_tx,
        kill: CancellationToken::new(),
        sequence: 0,
        unbinding: None,
        awaiting_ack: HashMap::new(),
        answered: 0,
        window_start: Instant::now(),
        window_submits: 0,
    };
    let mut link = Framed::new(
        stream,
        FrameCodec::new(session.shared.config.smpp.max_pdu_length),
    );
    let mut delayed: DelayQueue<Command> = DelayQueue::new();
    let mut paused = false;
    let mut held: VecDeque<Frame> = VecDeque::new();
    let reason = loop {
        if let Err(reason) = session.sit_out_hang(&shutdown).await {
            break reason;
        }
        // Too many receipts waiting: a submitting session stops reading (TCP back-pressure) until
        // they drain, but keeps writing, since it may be the one they are waiting for.
        // Only sessions that submit pause; a receiver must stay free to bind and take receipts.
        let submits = session
            .bound
            .as_ref()
            .is_some_and(|b| b.bind_type.may_submit());
        let room = !submits || session.shared.pending_receipts.may_read(paused);
        paused = !room;
        // Requests read while paused wait here, in order, until there is room again.
        if room && !held.is_empty() {
            let mut close = None;
            while let Some(frame) = held.pop_front() {
                let reply = session.on_frame(frame);
                if let Err(reason) = session.answer(&mut link, &mut delayed, reply).await {
                    close = Some(reason);
                    break;
                }
            }
            if let Err(err) = link.flush().await {
                break format!("write failed: {err}");
            }
            if let Some(reason) = close {
                break reason;
            }
        }
        // Paused, a session whose deliver_sm window is full reads all the same: the answers that
        // free the window (and drain the receipts) arrive on this socket. Its requests are held
        // unanswered, so back-pressure still holds; past HELD_MAX it stops reading.
        let read = room || (!session.window_open() && held.len() < HELD_MAX);
        tokio::select! {
            _ = session.shared.pending_receipts.room(), if !room => {}
            frame = link.next(), if read => {
                // A hang set while this frame was awaited holds the frame too.
                if let Err(reason) = session.sit_out_hang(&shutdown).await {
                    break reason;
                }
                let mut next = Some(frame);
                let mut close = None;
                // Answer every frame already buffered, then flush once.
                while let Some(frame) = next.take() {
                    match frame {
                        None => { close = Some("closed by the ESME".to_owned()); break }
                        Some(Err(err)) => { close = Some(err.to_string()); break }
                        Some(Ok(frame)) if !room && !is_response(&frame) => held.push_back(frame),
                        Some(Ok(frame)) => {
                            let reply = session.on_frame(frame);
                            if let Err(reason) = session.answer(&mut link, &mut delayed, reply).await {
                                close = Some(reason);
                                break;
                            }
                        }
                    }
                    if !room && held.len() >= HELD_MAX {
                        break;
                    }
                    next = link.next().now_or_never();
                }
                if let Err(err) = link.flush().await {
                    break format!("write failed: {err}");
                }
                if let Some(reason) = close {
                    break reason;
                }
            }
            // Only while the window has room: what waits stays in the channel, and the scheduler
            // retries when the channel is full.
            Some(outbound) = outbound_rx.recv(), if session.window_open() => {
                let mut next = Some(outbound);
                while let Some(outbound) = next.take() {
                    let seq = session.next_sequence();
                    let deadline = tokio::time::Instant::now() + session.response_timeout();
                    let command = match outbound {
                        Outbound::DeliverSm(pdu) => {
                            session.awaiting_ack.insert(seq, Awaiting { job: None, deadline });
                            Command::new(CommandStatus::EsmeRok, seq, *pdu)
                        }
                        Outbound::Receipt(job) => {
                            let pdu = job.receipt.deliver_sm();
                            session.awaiting_ack.insert(seq, Awaiting { job: Some(job), deadline });
                            Command::new(CommandStatus::EsmeRok, seq, pdu)
                        }
                        Outbound::Unbind => {
                            session.unbinding = Some((seq, tokio::time::Instant::now() + UNBIND_TIMEOUT));
                            Command::new(CommandStatus::EsmeRok, seq, Pdu::Unbind)
                        }
                    };
                    if let Err(err) = link.feed(&command).await {
                        warn!(peer = %session.peer, %err, "write failed");
                    }
                    next = if session.window_open() { outbound_rx.try_recv().ok() } else { None };
                }
                if let Err(err) = link.flush().await {
                    break format!("write failed: {err}");
                }
            }
            _ = tokio::time::sleep_until(session.unbinding.map_or_else(tokio::time::Instant::now, |(_, at)| at)),
                if session.unbinding.is_some() => break "no unbind_resp in time".to_owned(),
            _ = tokio::time::sleep_until(session.first_deadline().unwrap_or_else(tokio::time::Instant::now)),
                if !session.awaiting_ack.is_empty() => session.expire_unanswered(),
            Some(expired) = delayed.next(), if !delayed.is_empty() => {
                if let Err(err) = link.send(&expired.into_inner()).await {
                    break format!("write failed: {err}");
                }
            }
            _ = session.kill.cancelled() => break "dropped by the tester".to_owned(),
            _ = shutdown.cancelled() => break "simulator stopping".to_owned(),
        }
    };
    session.shared.registry.unregister(session.id);
    session.recorder.closed();
    // Receipts written but not acknowledged, and those still queued for this session (behind
    // a full window), go back to the scheduler for another session. Unregistered first, so
    // nothing new arrives once the queue is closed.
    outbound_rx.close();
    let mut unacknowledged: Vec<_> = session
        .awaiting_ack
        .drain()
        .filter_map(|(_, awaiting)| awaiting.job)
        .collect();
    while let Ok(outbound) = outbound_rx.try_recv() {
        if let Outbound::Receipt(job) = outbound {
            unacknowledged.push(job);
        }
    }
    for job in unacknowledged {
        session.requeue_receipt(*job);
    }
    if session.bound.is_some() {
        session
            .shared
            .stats
            .sessions
            .fetch_sub(1, Ordering::Relaxed);
    }
    info!(peer = %session.peer, %reason, "session ended");
}

impl Session {
    fn account(&self) -> Option<&str> {
        self.bound.as_ref().map(|b| b.account.as_str())
    }

    /// Under a hang fault: reads nothing and answers nothing until it ends (TCP back-pressure
    /// does the rest). An error means the session must end.
    async fn sit_out_hang(&mut self, shutdown: &CancellationToken) -> Result<(), String> {
        self.refresh_faults();
        let Some(until) = self
            .faults
            .hang_until
            .filter(|until| *until > Instant::now())
        else {
            return Ok(());
        };
        tokio::select! {
            _ = tokio::time::sleep_until(until.into()) => Ok(()),
            _ = self.kill.cancelled() => Err("dropped by the tester".to_owned()),
            _ = shutdown.cancelled() => Err("simulator stopping".to_owned()),
        }
    }

    /// Re-reads the faults if any changed; the drop_after_pdus count restarts then.
    fn refresh_faults(&mut self) {
        let generation = self.shared.faults.generation();
        if generation != self.faults_seen {
            self.faults_seen = generation;
            self.faults = self.shared.faults.for_account(self.account());
            self.answered = 0;
        }
    }

    /// Hands a receipt back to the scheduler, due now (its session went away: another may
    /// take it at once).
    fn requeue_receipt(&self, mut job: Job) {
        job.at = tokio::time::Instant::now();
        self.shared.pending_receipts.add();
        let _ = self.shared.receipts.send(job);
    }

    /// Whether another deliver_sm may be written before the ESME answers the ones out.
    fn window_open(&self) -> bool {
        self.awaiting_ack.len() < self.shared.config.smpp.window
    }

    fn response_timeout(&self) -> Duration {
        Duration::from_millis(self.shared.config.smpp.response_timeout_ms)
    }

    fn first_deadline(&self) -> Option<tokio::time::Instant> {
        self.awaiting_ack.values().map(|a| a.deadline).min()
    }

    /// Frees the window slots of deliver_sm unanswered past their deadline; their receipts are
    /// redelivered with back-off.
    fn expire_unanswered(&mut self) {
        let now = tokio::time::Instant::now();
        let expired: Vec<u32> = self
            .awaiting_ack
            .iter()
            .filter(|(_, a)| a.deadline <= now)
            .map(|(seq, _)| *seq)
            .collect();
        for seq in expired {
            if let Some(job) = self.awaiting_ack.remove(&seq).and_then(|a| a.job) {
                warn!(peer = %self.peer, id = %job.receipt.message_id, "receipt unanswered; redelivering later");
                self.redeliver(*job);
            }
        }
    }

    /// The ESME answered deliver_sm `seq` (with deliver_sm_resp, or generic_nack): done when
    /// accepted; a refused receipt comes again after a back-off, never in a tight loop.
    fn on_deliver_response(&mut self, seq: u32, status: CommandStatus) {
        let Some(awaiting) = self.awaiting_ack.remove(&seq) else {
            return;
        };
        if let Some(job) = awaiting.job
            && status != CommandStatus::EsmeRok
        {
            debug!(peer = %self.peer, id = %job.receipt.message_id, status = %smpp_wire::status::status_name(status), "receipt refused");
            self.redeliver(*job);
        }
    }

    /// Hands a refused receipt back to the scheduler, due after the back-off its refusals
    /// have earned, or gives it up after `receipts.max_redeliveries`.
    fn redeliver(&self, mut job: Job) {
        let policy = &self.shared.config.receipts;
        job.refusals += 1;
        if job.refusals > policy.max_redeliveries {
            self.shared.metrics.receipt_dropped();
            warn!(peer = %self.peer, id = %job.receipt.message_id, refusals = job.refusals, "receipt given up");
            return;
        }
        job.at = tokio::time::Instant::now() + policy.redelivery_delay(job.refusals);
        self.shared.pending_receipts.add();
        let _ = self.shared.receipts.send(job);
    }

    fn next_sequence(&mut self) -> u32 {
        self.sequence = if self.sequence >= 0x7FFF_FFFF {
            1
        } else {
            self.sequence + 1
        };
        self.sequence
    }

    fn on_frame(&mut self, frame: Frame) -> Reply {
        // Faults set while this session waited for the frame apply to it.
        self.refresh_faults();
        match frame {
            // A response is never answered, not even with generic_nack (SMPP 3.4 §2.4); one
            // whose body does not decode still answers its request by its header.
            Frame::Malformed {
                command_id,
                command_status,
                sequence_number,
                error,
                ..
            } if u32::from(command_id) & 0x8000_0000 != 0 => {
                warn!(peer = %self.peer, ?command_id, %error, "malformed response taken by its header");
                if matches!(
                    command_id,
                    CommandId::DeliverSmResp | CommandId::GenericNack
                ) {
                    self.on_deliver_response(sequence_number, command_status);
                }
                Reply::None
            }
            Frame::Malformed {
                command_id,
                sequence_number,
                nack_status,
                error,
                ..
            } => {
                warn!(peer = %self.peer, ?command_id, %error, "malformed PDU answered with generic_nack");
                self.nack(nack_status, sequence_number)
            }
            Frame::Command(command) => self.on_command(command),
        }
    }

    fn nack(&self, status: CommandStatus, sequence_number: u32) -> Reply {
        self.shared.metrics.generic_nack();
        crate::stats::Stats::add(&self.shared.stats.generic_nacks);
        Reply::Send(Command::new(status, sequence_number, Pdu::GenericNack))
    }

    /// Writes (or schedules, under a latency fault) a reply; an error closes the session.
    async fn answer<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        link: &mut Framed<S, FrameCodec>,
        delayed: &mut DelayQueue<Command>,
        reply: Reply,
    ) -> Result<(), String> {
        let (command, close) = match reply {
            Reply::None => return Ok(()),
            Reply::Close => return Err("unbound by the simulator".to_owned()),
            Reply::Send(command) => (command, false),
            Reply::SendAndClose(command) => (command, true),
        };
        match self.faults.latency().filter(|_| !close) {
            Some(delay) => {
                delayed.insert(command, delay);
            }
            None => link
                .feed(&command)
                .await
                .map_err(|err| format!("write failed: {err}"))?,
        }
        if close {
            return Err("unbound".to_owned());
        }
        self.answered += 1;
        if self
            .faults
            .spec
            .drop_after_pdus
            .is_some_and(|n| self.answered >= n)
        {
            link.flush()
                .await
                .map_err(|err| format!("write failed: {err}"))?;
            return Err(format!("dropped after {} PDUs (fault)", self.answered));
        }
        Ok(())
    }
}
