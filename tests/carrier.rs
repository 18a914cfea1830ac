//! The SMPP side over real sockets: reconnecting after the SMSC dies, surviving a malformed frame,
//! and putting on the wire exactly what an independent decoder (smpp-codec) reads back.

mod common;

use bytes::BytesMut;
use common::proxy::{Proxy, command_id};
use common::{Daemon, Options, Sim};
use reqwest::StatusCode;
use rusmpp::pdus::DeliverSm;
use rusmpp::types::{COctetString, OctetString};
use rusmpp::values::EsmClass;
use rusmpp::{Command, CommandStatus};
use smpp_codec::common::{BindMode, Npi, Ton};
use smpp_codec::pdus::{
    BindRequest, DeliverSmResponse, EnquireLinkRequest, GenericNack, SubmitSmRequest, UnbindRequest,
};
use tokio_util::codec::Encoder;

const BIND_TRANSCEIVER: u32 = 0x0000_0009;
const SUBMIT_SM: u32 = 0x0000_0004;
const ENQUIRE_LINK: u32 = 0x0000_0015;
const DELIVER_SM: u32 = 0x0000_0005;
const UNBIND: u32 = 0x0000_0006;
const DELIVER_SM_RESP: u32 = 0x8000_0005;
const GENERIC_NACK: u32 = 0x8000_0000;

#[tokio::test]
async fn after_the_smsc_dies_and_returns_the_daemon_rebinds_and_delivers_what_was_queued() {
    let sim = Sim::start().await;
    let address = sim.smpp;
    let daemon = Daemon::start_bound(Options::new(address)).await;
    daemon.send("+31600000001").await;
    sim.code_for("+31600000001").await;

    sim.kill().await;
    daemon.wait_bound(false).await;
    assert_eq!(
        daemon.get_text("/readyz").await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    // Accepted while no SMSC is there: it waits in the queue.
    assert_eq!(daemon.send("+31600000002").await.0, StatusCode::ACCEPTED);

    let sim = Sim::start_on(address).await;
    daemon.wait_bound(true).await;
    assert_eq!(daemon.get_text("/readyz").await.0, StatusCode::OK);
    let queued = sim.code_for("+31600000002").await;
    assert_eq!(
        daemon.verify("+31600000002", &queued).await.1["status"],
        "approved"
    );
    daemon.send("+31600000003").await;
    let fresh = sim.code_for("+31600000003").await;
    assert_eq!(
        daemon.verify("+31600000003", &fresh).await.1["status"],
        "approved"
    );
    daemon.stop().await;
}

fn encode(command: &Command) -> Vec<u8> {
    let mut buf = BytesMut::new();
    smpp_wire::FrameCodec::new(65_536)
        .encode(command, &mut buf)
        .expect("encode to memory");
    buf.to_vec()
}

fn deliver_sm(seq: u32) -> Vec<u8> {
    let body = DeliverSm::builder()
        .source_addr(COctetString::from_str_checked("31612345678"))
        .destination_addr(COctetString::from_str_checked("OTPGATE"))
        .esm_class(EsmClass::from(0x04))
        .short_message(OctetString::from_vec(b"id:1 stat:DELIVRD".to_vec()).expect("fits"))
        .build();
    encode(&Command::new(CommandStatus::EsmeRok, seq, body))
}

trait FromStrChecked {
    fn from_str_checked(value: &str) -> Self;
}

impl<const MIN: usize, const MAX: usize> FromStrChecked for COctetString<MIN, MAX> {
    fn from_str_checked(value: &str) -> Self {
        value.parse().expect("test literal fits")
    }
}

/// A deliver_sm whose source_addr has no NUL terminator inside its frame.
/// A frame of `command_id` whose 4-octet body decodes as nothing.
fn malformed_frame(command_id: u32, seq: u32) -> Vec<u8> {
    let mut frame = Vec::new();
    frame.extend_from_slice(&20u32.to_be_bytes());
    frame.extend_from_slice(&command_id.to_be_bytes());
    frame.extend_from_slice(&0u32.to_be_bytes());
    frame.extend_from_slice(&seq.to_be_bytes());
    frame.extend_from_slice(b"abcd");
    frame
}

#[tokio::test]
async fn every_pdu_the_client_sends_decodes_with_smpp_codec_to_the_same_fields() {
    let sim = Sim::start().await;
    let proxy = Proxy::start(sim.smpp).await;
    let mut options = Options::new(proxy.addr);
    options.carrier_extra = "registered_delivery = 1\nenquire_link_interval_ms = 100".into();
    let daemon = Daemon::start_bound(options).await;

    daemon.send("+1 425-123-4567").await;
    let text = sim.latest("+14251234567").await.expect("delivered")["text"]
        .as_str()
        .expect("text")
        .to_owned();
    proxy.inject(deliver_sm(77));
    proxy.inject(malformed_frame(DELIVER_SM, 78));
    proxy.inject(malformed_frame(SUBMIT_SM, 79));
    let enquire = proxy.wait_for(ENQUIRE_LINK, 1).await;
    // Three deliver_sm_resp: the simulator's own receipt, the injected deliver_sm and the
    // injected one that does not decode (answered in kind, with an error, so it is not
    // redelivered for ever).
    let deliver_resp = proxy.wait_for(DELIVER_SM_RESP, 3).await;
    let nack = proxy.wait_for(GENERIC_NACK, 1).await;
    daemon.stop().await;

    let bind = BindRequest::decode(&proxy.frames_with(BIND_TRANSCEIVER)[0]).expect("bind decodes");
    assert_eq!(bind.mode, BindMode::Transceiver);
    assert_eq!(bind.system_id, "otpgate");
    assert_eq!(bind.password, "secret");
    assert_eq!(bind.system_type, "");
    assert_eq!(bind.interface_version, 0x34);

    let submits = proxy.frames_with(SUBMIT_SM);
    assert_eq!(submits.len(), 1);
    let submit = SubmitSmRequest::decode(&submits[0]).expect("submit_sm decodes");
    assert_eq!(submit.source_addr, "OTPGATE");
    assert_eq!(submit.source_addr_ton, Ton::Alphanumeric);
    assert_eq!(submit.source_addr_npi, Npi::Unknown);
    assert_eq!(submit.dest_addr, "14251234567");
    assert_eq!(submit.dest_addr_ton, Ton::International);
    assert_eq!(submit.dest_addr_npi, Npi::Isdn);
    assert_eq!(submit.esm_class, 0);
    assert_eq!(submit.data_coding, 0);
    assert_eq!(submit.registered_delivery, 1);
    // The code's lifetime (300 s by default), as SMPP relative time: the carrier drops it then.
    assert!(
        submit.validity_period.ends_with("000R")
            && ("000000000455".."000000000501").contains(&&submit.validity_period[..12]),
        "{}",
        submit.validity_period
    );
    assert_eq!(
        submit.short_message,
        text.as_bytes(),
        "plain ASCII text is its own GSM 03.38 septets"
    );
    assert!(submit.optional_params.is_empty());

    let enquire = EnquireLinkRequest::decode(&enquire[0]).expect("enquire_link decodes");
    let responses: Vec<DeliverSmResponse> = deliver_resp
        .iter()
        .map(|frame| DeliverSmResponse::decode(frame).expect("deliver_sm_resp decodes"))
        .collect();
    let resp = responses
        .iter()
        .find(|r| r.sequence_number == 77)
        .expect("the injected deliver_sm was answered");
    assert_eq!(resp.command_status, 0);
    let refused = responses
        .iter()
        .find(|r| r.sequence_number == 78)
        .expect("the deliver_sm that does not decode was answered with deliver_sm_resp");
    assert_ne!(refused.command_status, 0);
    assert!(
        responses
            .iter()
            .all(|r| r.command_status == 0 || r.sequence_number == 78)
    );
    let nack = GenericNack::decode(&nack[0]).expect("generic_nack decodes");
    assert_eq!(nack.sequence_number, 79);
    assert_ne!(nack.command_status, 0);
    let unbind = UnbindRequest::decode(&proxy.frames_with(UNBIND)[0]).expect("unbind decodes");

    // Sequence numbers of requests are unique within the session.
    let mut sequences = vec![
        bind.sequence_number,
        submit.sequence_number,
        enquire.sequence_number,
        unbind.sequence_number,
    ];
    sequences.sort_unstable();
    sequences.dedup();
    assert_eq!(sequences.len(), 4);
    assert!(
        proxy.frames().iter().all(|f| command_id(f) != 0x0000_0002),
        "never binds as a transmitter"
    );
}

#[tokio::test]
async fn a_malformed_frame_from_the_smsc_gets_a_generic_nack_and_the_session_lives_on() {
    let sim = Sim::start().await;
    let proxy = Proxy::start(sim.smpp).await;
    let daemon = Daemon::start_bound(Options::new(proxy.addr)).await;
    proxy.inject(malformed_frame(SUBMIT_SM, 5));
    proxy.wait_for(GENERIC_NACK, 1).await;
    daemon.send("+31600000009").await;
    let code = sim.code_for("+31600000009").await;
    assert_eq!(
        daemon.verify("+31600000009", &code).await.1["status"],
        "approved"
    );
    assert_eq!(sim.stats_now().binds, 1, "the same session delivered it");
    daemon.stop().await;
}
