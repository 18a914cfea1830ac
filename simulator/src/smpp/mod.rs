//! The SMPP side: accept loop and one task per ESME session. A session reads frames, answers
//! them (now, or later under a latency fault), and writes what the rest of the simulator hands it
//! (receipts, MO) through its outbound channel. Writes are batched: every frame already buffered
//! is answered before one flush.

mod handle;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures_util::{FutureExt, SinkExt, StreamExt};
use rusmpp::{Command, CommandStatus, Pdu};
use smpp_wire::{Frame, FrameCodec};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_util::codec::Framed;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tokio_util::time::DelayQueue;
use tracing::{info, warn};

use crate::Shared;
use crate::config::BindType;
use crate::faults::Active;
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
                    let (shared, shutdown) = (shared.clone(), shutdown.clone());
                    match tls.clone() {
                        None => {
                            tracker.spawn(run(shared, stream, peer, shutdown));
                        }
                        Some(acceptor) => {
                            tracker.spawn(async move {
                                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                                    Ok(Ok(stream)) => run(shared, stream, peer, shutdown).await,
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

/// How long an ESME has to answer the simulator's unbind.
const UNBIND_TIMEOUT: Duration = Duration::from_secs(2);

struct Session {
    shared: Arc<Shared>,
    peer: SocketAddr,
    id: u64,
    bound: Option<Bound>,
    outbound_tx: mpsc::Sender<Outbound>,
    kill: CancellationToken,
    sequence: u32,
    /// Faults in force for this session, re-read when the faults' generation moves.
    faults: Arc<Active>,
    faults_seen: u64,
    /// PDUs answered since the faults last changed (for drop_after_pdus).
    answered: u64,
    /// Receipts written to the ESME and not yet acknowledged, by sequence_number.
    awaiting_ack: std::collections::HashMap<u32, Box<crate::scheduler::Job>>,
    /// The unbind this session sent and when it gives up waiting for the answer.
    unbinding: Option<(u32, tokio::time::Instant)>,
    /// Start of the current one-second throttle window and the submits in it.
    window_start: Instant,
    window_submits: u32,
}

async fn run<S>(shared: Arc<Shared>, stream: S, peer: SocketAddr, shutdown: CancellationToken)
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let (outbound_tx, mut outbound_rx) = mpsc::channel(OUTBOUND_CAPACITY);
    let mut session = Session {
        faults_seen: shared.faults.generation(),
        faults: shared.faults.for_account(None),
        id: shared.registry.next_id(),
        shared,
        peer,
        bound: None,
        outbound_tx,
        kill: CancellationToken::new(),
        sequence: 0,
        unbinding: None,
        awaiting_ack: std::collections::HashMap::new(),
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
        tokio::select! {
            _ = session.shared.pending_receipts.room(), if !room => {}
            frame = link.next(), if room => {
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
                        Some(Ok(frame)) => {
                            let reply = session.on_frame(frame);
                            if let Err(reason) = session.answer(&mut link, &mut delayed, reply).await {
                                close = Some(reason);
                                break;
                            }
                        }
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
            Some(outbound) = outbound_rx.recv() => {
                let mut next = Some(outbound);
                while let Some(outbound) = next.take() {
                    let seq = session.next_sequence();
                    let command = match outbound {
                        Outbound::DeliverSm(pdu) => Command::new(CommandStatus::EsmeRok, seq, *pdu),
                        Outbound::Receipt(job) => {
                            let pdu = job.receipt.deliver_sm();
                            session.awaiting_ack.insert(seq, job);
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
                    next = outbound_rx.try_recv().ok();
                }
                if let Err(err) = link.flush().await {
                    break format!("write failed: {err}");
                }
            }
            _ = tokio::time::sleep_until(session.unbinding.map_or_else(tokio::time::Instant::now, |(_, at)| at)),
                if session.unbinding.is_some() => break "no unbind_resp in time".to_owned(),
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
    // Receipts written but not acknowledged go back to the scheduler for another session.
    let unacknowledged: Vec<_> = session.awaiting_ack.drain().map(|(_, job)| job).collect();
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

    /// Hands a receipt back to the scheduler, due now.
    fn requeue_receipt(&self, mut job: crate::scheduler::Job) {
        job.at = tokio::time::Instant::now();
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
            Frame::Malformed {
                command_id,
                sequence_number,
                nack_status,
                error,
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
