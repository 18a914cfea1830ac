//! The SMPP transceiver session: one task owns the socket, binds, writes submit_sm within a window,
//! matches responses by sequence_number, keeps the link alive, reconnects, and unbinds on drain.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use rusmpp::pdus::{DeliverSmResp, SubmitSm};
use rusmpp::{Command, CommandId, CommandStatus, Pdu};
use smpp_wire::status::status_name;
use smpp_wire::{Frame, FrameCodec};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio_util::codec::Framed;
use tracing::{debug, info, warn};

use super::backoff::Backoff;
use super::pdu;
use super::tls::TlsClient;
use super::{CarrierStop, OutboundSms};
use crate::config::CarrierConfig;
use crate::delivery::{DeliveryState, DeliveryTracker};
use crate::metrics as m;
use smpp_wire::receipt;

/// A plain or TLS stream to the SMSC.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

type Link = Framed<Box<dyn Io>, FrameCodec>;

/// What became of a part offered to the link.
enum Fed {
    Written,
    /// Expired before it could go; counted and ended.
    Dropped,
    /// Over the carrier's rate: wait until then.
    Paused(Instant),
    LinkFailed(String),
}

/// Why a bound session ended.
enum SessionEnd {
    /// Queue drained and unbound: the task is done.
    Drained,
    /// Told to stop before the queue drained.
    Aborted,
    /// The link failed; reconnect.
    Lost(String),
}

/// Why a connect or bind attempt failed.
#[derive(Debug, thiserror::Error)]
enum BindError {
    #[error("connect failed: {0}")]
    Connect(std::io::Error),
    #[error("connect timed out")]
    ConnectTimeout,
    #[error("TLS handshake failed: {0}")]
    Tls(String),
    #[error("bind rejected with {0}")]
    Rejected(String),
    #[error("no bind response in time")]
    BindTimeout,
    #[error("link closed during bind")]
    Closed,
    #[error("link error during bind: {0}")]
    Link(String),
    #[error(transparent)]
    Config(#[from] pdu::PduError),
}

/// A submit_sm written and not yet answered.
/// One submit_sm's worth of a message: what the window, the retry buffer and the in-flight map
/// hold, so a part the SMSC accepted is never sent again when a later one must be.
struct OutboundPart {
    sms: Arc<OutboundSms>,
    body: SubmitSm,
}

struct InFlight {
    part: OutboundPart,
    written_at: Instant,
}

/// Allocates sequence_numbers: 1..=0x7FFF_FFFF, wrapping, as SMPP 3.4 section 3.2 allows.
struct Sequence(u32);

impl Sequence {
    fn next(&mut self) -> u32 {
        self.0 = if self.0 >= 0x7FFF_FFFF { 1 } else { self.0 + 1 };
        self.0
    }
}

/// Statuses that mean "later", not "never": the same part is retried (after a pause) until its
/// message's deadline. Everything else is final for that message.
fn is_temporary(status: CommandStatus) -> bool {
    matches!(
        status,
        CommandStatus::EsmeRthrottled
            | CommandStatus::EsmeRmsgqful
            | CommandStatus::EsmeRsyserr
            | CommandStatus::EsmeRxTAppn
    )
}

/// How long a session pauses writes after the SMSC says it is throttled or full.
const THROTTLE_PAUSE: Duration = Duration::from_secs(1);

pub(super) struct Carrier {
    config: CarrierConfig,
    queue: mpsc::Receiver<OutboundSms>,
    /// Messages taken from the queue that must go first: in flight when a link dropped, or
    /// refused as throttled. At-least-once: a message may reach the SMSC twice, never zero times.
    retry: VecDeque<OutboundPart>,
    /// Concatenation reference of the next multipart message.
    reference: u16,
    /// TLS to the SMSC, if configured.
    tls: Option<TlsClient>,
    /// Segments per second for this carrier, if limited.
    throughput: Option<governor::DefaultDirectRateLimiter>,
    queue_done: bool,
    bound: watch::Sender<bool>,
    stop: CarrierStop,
    metrics: SessionMetrics,
    deliveries: DeliveryTracker,
}

/// Metric handles resolved once: the per-message path then allocates no label strings.
struct SessionMetrics {
    carrier: String,
    submitted_ok: metrics::Counter,
    submit_duration: metrics::Histogram,
    queue_depth: metrics::Gauge,
    bound: metrics::Gauge,
    bind_failures: metrics::Counter,
    receipt_latency: metrics::Histogram,
}

impl SessionMetrics {
    fn new(carrier: &str) -> Self {
        let label = || carrier.to_owned();
        Self {
            carrier: carrier.to_owned(),
            submitted_ok: metrics::counter!(m::SMS_SUBMITTED_TOTAL, m::LABEL_CARRIER => label(), m::LABEL_RESULT => "ok"),
            submit_duration: metrics::histogram!(m::SMS_SUBMIT_DURATION_SECONDS, m::LABEL_CARRIER => label()),
            queue_depth: metrics::gauge!(m::SMS_QUEUE_DEPTH, m::LABEL_CARRIER => label()),
            bound: metrics::gauge!(m::SMPP_SESSIONS_BOUND, m::LABEL_CARRIER => label()),
            bind_failures: metrics::counter!(m::SMPP_BIND_FAILURES_TOTAL, m::LABEL_CARRIER => label()),
            receipt_latency: metrics::histogram!(m::SMS_RECEIPT_LATENCY_SECONDS, m::LABEL_CARRIER => label()),
        }
    }

    /// Counts one final submit outcome.
    fn submitted(&self, result: &str) {
        if result == "ok" {
            self.submitted_ok.increment(1);
        } else {
            metrics::counter!(m::SMS_SUBMITTED_TOTAL, m::LABEL_CARRIER => self.carrier.clone(), m::LABEL_RESULT => result.to_owned())
                .increment(1);
        }
    }
}

impl Carrier {
    pub(super) fn new(
        config: CarrierConfig,
        queue: mpsc::Receiver<OutboundSms>,
        bound: watch::Sender<bool>,
        stop: CarrierStop,
        deliveries: DeliveryTracker,
        tls: Option<TlsClient>,
    ) -> Self {
        let throughput = config
            .max_messages_per_second
            .map(|rate| governor::RateLimiter::direct(governor::Quota::per_second(rate)));
        Self {
            metrics: SessionMetrics::new(&config.name),
            config,
            queue,
            retry: VecDeque::new(),
            reference: 0,
            throughput,
            tls,
            queue_done: false,
            bound,
            stop,
            deliveries,
        }
    }

    fn nothing_left(&self) -> bool {
        self.retry.is_empty()
            && (self.queue_done || (self.queue.is_closed() && self.queue.is_empty()))
    }

    fn set_bound(&self, bound: bool) {
        self.bound.send_replace(bound);
        self.metrics.bound.set(if bound { 1.0 } else { 0.0 });
    }

    /// Counts parts written again after an unanswered write: possible duplicates.
    fn resubmitted(&self, reason: &'static str, count: usize) {
        metrics::counter!(m::SMS_RESUBMITTED_TOTAL, m::LABEL_CARRIER => self.config.name.clone(), m::LABEL_REASON => reason)
            .increment(count as u64);
    }

    fn record(&self, result: &str) {
        self.metrics.submitted(result);
    }

    /// Runs until drained or aborted: connect, bind, serve, and on failure back off and retry.
    pub(super) async fn run(mut self) {
        let mut backoff = Backoff::new(self.config.reconnect_initial, self.config.reconnect_max);
        loop {
            if self.stop.drain.is_cancelled() {
                self.queue.close();
            }
            if self.stop.abort.is_cancelled()
                || (self.stop.drain.is_cancelled() && self.nothing_left())
            {
                break;
            }
            match self.connect_and_bind().await {
                Ok(link) => {
                    backoff.reset();
                    info!(carrier = %self.config.name, host = %self.config.host, port = self.config.port, "SMPP session bound");
                    self.set_bound(true);
                    let end = self.serve(link).await;
                    self.set_bound(false);
                    match end {
                        SessionEnd::Drained => {
                            info!(carrier = %self.config.name, "queue drained, session unbound");
                            break;
                        }
                        SessionEnd::Aborted => break,
                        SessionEnd::Lost(reason) => {
                            warn!(carrier = %self.config.name, %reason, requeued = self.retry.len(), "SMPP session lost")
                        }
                    }
                }
                Err(err) => {
                    self.metrics.bind_failures.increment(1);
                    warn!(carrier = %self.config.name, %err, "SMPP connect or bind failed");
                }
            }
            let delay = backoff.next_delay(jitter_seed());
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = self.stop.abort.cancelled() => break,
                _ = self.stop.drain.cancelled(), if !self.queue.is_closed() => {}
            }
        }
        let left = self.retry.len() + self.queue.len();
        if left > 0 {
            warn!(carrier = %self.config.name, messages = left, "carrier stopped with messages unsent");
        }
    }

    async fn connect_and_bind(&mut self) -> Result<Link, BindError> {
        let address = (self.config.host.as_str(), self.config.port);
        let stream = tokio::time::timeout(self.config.connect_timeout, TcpStream::connect(address))
            .await
            .map_err(|_| BindError::ConnectTimeout)?
            .map_err(BindError::Connect)?;
        // Without TCP_NODELAY small PDUs wait ~40 ms on Nagle + delayed ACK.
        stream.set_nodelay(true).map_err(BindError::Connect)?;
        let stream: Box<dyn Io> = match &self.tls {
            None => Box::new(stream),
            Some(tls) => {
                let handshake = tls.connector.connect(tls.server_name.clone(), stream);
                let stream = tokio::time::timeout(self.config.connect_timeout, handshake)
                    .await
                    .map_err(|_| BindError::ConnectTimeout)?
                    .map_err(|err| BindError::Tls(err.to_string()))?;
                Box::new(stream)
            }
        };
        let mut link = Framed::new(stream, FrameCodec::new(self.config.max_pdu_length));
        let bind = Command::new(
            CommandStatus::EsmeRok,
            1,
            pdu::bind_transceiver(&self.config)?,
        );
        link.send(&bind)
            .await
            .map_err(|err| BindError::Link(err.to_string()))?;
        let answer = async {
            loop {
                match link.next().await {
                    None => return Err(BindError::Closed),
                    Some(Err(err)) => return Err(BindError::Link(err.to_string())),
                    Some(Ok(Frame::Command(command))) => match command.id() {
                        CommandId::BindTransceiverResp | CommandId::GenericNack
                            if command.sequence_number() == 1 =>
                        {
                            return if command.status() == CommandStatus::EsmeRok {
                                Ok(())
                            } else {
                                Err(BindError::Rejected(status_name(command.status())))
                            };
                        }
                        // An SMSC may probe before answering; keep the link polite.
                        CommandId::EnquireLink => {
                            let resp = Command::new(
                                CommandStatus::EsmeRok,
                                command.sequence_number(),
                                Pdu::EnquireLinkResp,
                            );
                            link.send(&resp)
                                .await
                                .map_err(|err| BindError::Link(err.to_string()))?;
                        }
                        _ => {
                            debug!(carrier = %self.config.name, id = ?command.id(), "PDU ignored while binding")
                        }
                    },
                    Some(Ok(Frame::Malformed { .. })) => {
                        return Err(BindError::Link("malformed bind response".into()));
                    }
                }
            }
        };
        tokio::time::timeout(self.config.bind_timeout, answer)
            .await
            .map_err(|_| BindError::BindTimeout)??;
        Ok(link)
    }

    /// Takes the next part to write: retries first, then the queue (split into parts) without
    /// waiting.
    fn next_ready(&mut self) -> Option<OutboundPart> {
        loop {
            if let Some(part) = self.retry.pop_front() {
                return Some(part);
            }
            if self.queue_done {
                return None;
            }
            match self.queue.try_recv() {
                Ok(sms) => {
                    self.dequeued();
                    self.expand(sms);
                }
                Err(mpsc::error::TryRecvError::Empty) => return None,
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    self.queue_done = true;
                    return None;
                }
            }
        }
    }

    /// Splits a message into its parts, at the back of the retry buffer; one that cannot be
    /// encoded ends here.
    fn expand(&mut self, sms: OutboundSms) {
        self.reference = self.reference.wrapping_add(1);
        match pdu::submit_parts(&self.config, &sms, self.reference) {
            Ok(bodies) => {
                self.deliveries.parts(&sms.id, bodies.len());
                let sms = Arc::new(sms);
                self.retry
                    .extend(bodies.into_iter().map(|body| OutboundPart {
                        sms: sms.clone(),
                        body,
                    }));
            }
            Err(err) => {
                self.record("invalid");
                self.deliveries
                    .ended(&sms.id, DeliveryState::Failed, Some(err.to_string()));
                warn!(carrier = %self.config.name, to = %sms.to.masked(), %err, "message cannot be encoded");
            }
        }
    }
    fn dequeued(&self) {
        self.metrics.queue_depth.decrement(1.0);
    }

    /// Feeds one part into the link buffer (no flush).
    async fn feed_submit(
        &mut self,
        link: &mut Link,
        sequence: &mut Sequence,
        in_flight: &mut HashMap<u32, InFlight>,
        part: OutboundPart,
    ) -> Fed {
        let now = Instant::now();
        if now >= part.sms.deadline {
            self.record("expired");
            self.deliveries
                .ended(&part.sms.id, DeliveryState::Expired, None);
            debug!(carrier = %self.config.name, to = %part.sms.to.masked(), "code expired before it could be sent");
            return Fed::Dropped;
        }
        if let Some(limiter) = &self.throughput {
            if let Err(not_until) = limiter.check() {
                // Over the carrier's rate: this part waits, in its place, for the next slot.
                let wait = not_until.wait_time_from(governor::clock::Clock::now(
                    &governor::clock::DefaultClock::default(),
                ));
                self.retry.push_front(part);
                return Fed::Paused(now + wait);
            }
        }
        let seq = sequence.next();
        let command = Command::new(CommandStatus::EsmeRok, seq, part.body.clone());
        if let Err(err) = link.feed(&command).await {
            self.retry.push_front(part);
            return Fed::LinkFailed(err.to_string());
        }
        in_flight.insert(
            seq,
            InFlight {
                part,
                written_at: now,
            },
        );
        Fed::Written
    }
    /// Serves a bound link until it ends.
    async fn serve(&mut self, mut link: Link) -> SessionEnd {
        let mut sequence = Sequence(1);
        let mut in_flight: HashMap<u32, InFlight> = HashMap::new();
        let mut enquire_outstanding: Option<(u32, Instant)> = None;
        let mut last_read = Instant::now();
        let mut paused_until: Option<Instant> = None;
        let tick_every = (self
            .config
            .enquire_link_interval
            .min(self.config.response_timeout)
            / 4)
        .clamp(Duration::from_millis(10), Duration::from_secs(1));
        let mut ticker = tokio::time::interval(tick_every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let window = self.config.window;

        let end = loop {
            if self.stop.drain.is_cancelled() && !self.queue.is_closed() {
                self.queue.close();
            }
            // Fill the window from what is ready, then flush once: one syscall for a batch.
            let writable = paused_until.is_none_or(|until| Instant::now() >= until);
            if writable {
                paused_until = None;
                let mut fed = false;
                let mut failure = None;
                while in_flight.len() < window {
                    let Some(part) = self.next_ready() else { break };
                    match self
                        .feed_submit(&mut link, &mut sequence, &mut in_flight, part)
                        .await
                    {
                        Fed::Written => fed = true,
                        Fed::Dropped => {}
                        Fed::Paused(until) => {
                            paused_until = Some(until);
                            break;
                        }
                        Fed::LinkFailed(err) => {
                            failure = Some(err);
                            break;
                        }
                    }
                }
                if let Some(err) = failure {
                    break SessionEnd::Lost(format!("write failed: {err}"));
                }
                if fed {
                    if let Err(err) = link.flush().await {
                        break SessionEnd::Lost(format!("write failed: {err}"));
                    }
                }
            }
            if self.stop.drain.is_cancelled() && in_flight.is_empty() && self.nothing_left() {
                self.unbind(&mut link, &mut sequence).await;
                break SessionEnd::Drained;
            }

            let can_take = writable && in_flight.len() < window && !self.queue_done;
            tokio::select! {
                frame = link.next() => {
                    last_read = Instant::now();
                    match frame {
                        None => break SessionEnd::Lost("connection closed by the SMSC".into()),
                        Some(Err(err)) => break SessionEnd::Lost(format!("read failed: {err}")),
                        Some(Ok(Frame::Malformed { command_id, sequence_number, nack_status, error })) => {
                            warn!(carrier = %self.config.name, ?command_id, %error, "malformed PDU from the SMSC answered with generic_nack");
                            let nack = Command::new(nack_status, sequence_number, Pdu::GenericNack);
                            if let Err(err) = link.send(&nack).await {
                                break SessionEnd::Lost(format!("write failed: {err}"));
                            }
                        }
                        Some(Ok(Frame::Command(command))) => {
                            match self.on_command(command, &mut link, &mut in_flight, &mut enquire_outstanding, &mut paused_until).await {
                                Ok(()) => {}
                                Err(reason) => break SessionEnd::Lost(reason),
                            }
                        }
                    }
                }
                sms = self.queue.recv(), if can_take => match sms {
                    Some(sms) => {
                        // The loop head writes its parts, fills the window and flushes.
                        self.dequeued();
                        self.expand(sms);
                    }
                    None => self.queue_done = true,
                },
                _ = ticker.tick() => {
                    let now = Instant::now();
                    self.expire_responses(&mut in_flight, now);
                    if let Some((_, sent)) = enquire_outstanding {
                        if now.duration_since(sent) >= self.config.enquire_link_timeout {
                            break SessionEnd::Lost("enquire_link unanswered".into());
                        }
                    } else if now.duration_since(last_read) >= self.config.enquire_link_interval {
                        let seq = sequence.next();
                        if let Err(err) = link.send(&Command::new(CommandStatus::EsmeRok, seq, Pdu::EnquireLink)).await {
                            break SessionEnd::Lost(format!("write failed: {err}"));
                        }
                        enquire_outstanding = Some((seq, now));
                    }
                }
                _ = self.stop.drain.cancelled(), if !self.queue.is_closed() => {}
                _ = self.stop.abort.cancelled() => break SessionEnd::Aborted,
            }
        };
        // Whatever was written and not answered goes first on the next link.
        // They may have reached the SMSC: each resend is a possible duplicate (at-least-once).
        let mut unanswered: Vec<(u32, InFlight)> = in_flight.drain().collect();
        unanswered.sort_by_key(|(seq, _)| std::cmp::Reverse(*seq));
        if !unanswered.is_empty() {
            self.resubmitted("link_lost", unanswered.len());
        }
        for (_, flight) in unanswered {
            self.retry.push_front(flight.part);
        }
        end
    }

    /// Answers or matches one PDU from the SMSC. An error ends the session.
    async fn on_command(
        &mut self,
        command: Command,
        link: &mut Link,
        in_flight: &mut HashMap<u32, InFlight>,
        enquire_outstanding: &mut Option<(u32, Instant)>,
        paused_until: &mut Option<Instant>,
    ) -> Result<(), String> {
        let seq = command.sequence_number();
        let reply = match command.id() {
            CommandId::SubmitSmResp | CommandId::GenericNack => {
                match in_flight.remove(&seq) {
                    Some(flight) => {
                        let message_id = match command.pdu() {
                            Some(Pdu::SubmitSmResp(body)) => body.message_id().as_str(),
                            _ => "",
                        };
                        self.on_submit_result(flight, command.status(), message_id, paused_until)
                    }
                    None => {
                        debug!(carrier = %self.config.name, seq, "response to no outstanding request")
                    }
                }
                None
            }
            CommandId::EnquireLinkResp => {
                if enquire_outstanding.is_some_and(|(expected, _)| expected == seq) {
                    *enquire_outstanding = None;
                }
                None
            }
            CommandId::EnquireLink => Some(Command::new(
                CommandStatus::EsmeRok,
                seq,
                Pdu::EnquireLinkResp,
            )),
            // Every deliver_sm is acknowledged; a receipt also updates its message's record.
            CommandId::DeliverSm => {
                if let Some(Pdu::DeliverSm(body)) = command.pdu() {
                    self.on_deliver_sm(body);
                }
                Some(Command::new(
                    CommandStatus::EsmeRok,
                    seq,
                    DeliverSmResp::default(),
                ))
            }
            CommandId::Unbind => {
                let resp = Command::new(CommandStatus::EsmeRok, seq, Pdu::UnbindResp);
                let _ = link.send(&resp).await;
                return Err("the SMSC unbound".into());
            }
            CommandId::UnbindResp | CommandId::BindTransceiverResp => None,
            id if u32::from(id) & 0x8000_0000 != 0 => {
                debug!(carrier = %self.config.name, ?id, "unexpected response ignored");
                None
            }
            id => {
                debug!(carrier = %self.config.name, ?id, "unsupported request answered with generic_nack");
                Some(Command::new(
                    CommandStatus::EsmeRinvcmdid,
                    seq,
                    Pdu::GenericNack,
                ))
            }
        };
        if let Some(reply) = reply {
            link.send(&reply)
                .await
                .map_err(|err| format!("write failed: {err}"))?;
        }
        Ok(())
    }

    fn on_submit_result(
        &mut self,
        flight: InFlight,
        status: CommandStatus,
        message_id: &str,
        paused_until: &mut Option<Instant>,
    ) {
        let elapsed = flight.written_at.elapsed();
        self.metrics.submit_duration.record(elapsed.as_secs_f64());
        if status == CommandStatus::EsmeRok {
            self.record("ok");
            self.deliveries.submitted(&flight.part.sms.id, message_id);
            return;
        }
        let name = status_name(status);
        if is_temporary(status) {
            // Resend the same message after a pause; it keeps its place before newer ones.
            debug!(carrier = %self.config.name, status = %name, "temporary refusal; the message will be retried");
            *paused_until = Some(Instant::now() + THROTTLE_PAUSE);
            self.retry.push_front(flight.part);
        } else {
            warn!(carrier = %self.config.name, to = %flight.part.sms.to.masked(), status = %name, "submit_sm refused");
            self.deliveries.ended(
                &flight.part.sms.id,
                DeliveryState::Failed,
                Some(name.clone()),
            );
        }
        self.record(&name);
    }

    fn on_deliver_sm(&self, body: &rusmpp::pdus::DeliverSm) {
        let Some(receipt) = receipt::parse(
            u8::from(body.esm_class),
            body.short_message().as_ref(),
            body.tlvs(),
        ) else {
            debug!(carrier = %self.config.name, "deliver_sm that is not a receipt acknowledged");
            return;
        };
        let matched = self.deliveries.receipt(&receipt);
        if let Some(latency) = matched {
            self.metrics.receipt_latency.record(latency.as_secs_f64());
        } else {
            debug!(carrier = %self.config.name, id = %receipt.message_id, "receipt for no known message");
        }
        metrics::counter!(
            m::SMS_RECEIPTS_TOTAL,
            m::LABEL_CARRIER => self.config.name.clone(),
            m::LABEL_STATE => receipt.state.as_str(),
            m::LABEL_RESULT => if matched.is_some() { "matched" } else { "unmatched" }
        )
        .increment(1);
    }

    fn expire_responses(&mut self, in_flight: &mut HashMap<u32, InFlight>, now: Instant) {
        let timeout = self.config.response_timeout;
        let expired: Vec<u32> = in_flight
            .iter()
            .filter(|(_, flight)| now.duration_since(flight.written_at) >= timeout)
            .map(|(seq, _)| *seq)
            .collect();
        for seq in expired {
            if let Some(flight) = in_flight.remove(&seq) {
                self.record("timeout");
                self.resubmitted("response_timeout", 1);
                // No answer is not a refusal: try again while the code is still valid.
                if now < flight.part.sms.deadline {
                    self.retry.push_back(flight.part);
                }
            }
        }
    }

    async fn unbind(&mut self, link: &mut Link, sequence: &mut Sequence) {
        let seq = sequence.next();
        if link
            .send(&Command::new(CommandStatus::EsmeRok, seq, Pdu::Unbind))
            .await
            .is_err()
        {
            return;
        }
        let wait = async {
            while let Some(Ok(frame)) = link.next().await {
                if let Frame::Command(command) = frame {
                    if command.id() == CommandId::UnbindResp && command.sequence_number() == seq {
                        return;
                    }
                }
            }
        };
        if tokio::time::timeout(self.config.unbind_timeout, wait)
            .await
            .is_err()
        {
            debug!(carrier = %self.config.name, "no unbind_resp in time; closing anyway");
        }
    }
}

/// A random number for backoff jitter; a failure of the OS RNG only costs jitter.
fn jitter_seed() -> u32 {
    let mut bytes = [0u8; 4];
    getrandom::fill(&mut bytes)
        .map(|()| u32::from_le_bytes(bytes))
        .unwrap_or(u32::MAX / 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_numbers_wrap_within_the_spec_range() {
        let mut sequence = Sequence(0x7FFF_FFFE);
        assert_eq!(sequence.next(), 0x7FFF_FFFF);
        assert_eq!(sequence.next(), 1);
    }

    #[test]
    fn throttling_is_temporary_and_other_errors_are_not() {
        assert!(is_temporary(CommandStatus::EsmeRthrottled));
        assert!(is_temporary(CommandStatus::EsmeRmsgqful));
        assert!(is_temporary(CommandStatus::EsmeRsyserr));
        assert!(!is_temporary(CommandStatus::EsmeRinvdstadr));
        assert!(!is_temporary(CommandStatus::EsmeRsubmitfail));
    }
}
