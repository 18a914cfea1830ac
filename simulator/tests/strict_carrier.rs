//! The simulator as strict as a carrier, over real sockets: the tester API refuses what it does
//! not understand, query/cancel/replace respect bind and account, submits a carrier would
//! refuse are refused header-only, receipts are redelivered with back-off inside a window,
//! responses are never nacked, and data_coding is read with its message class.

mod common;

use std::time::Duration;

use common::*;
use futures_util::{SinkExt, StreamExt};
use rusmpp::pdus::{CancelSm, DataSm, DeliverSmResp, QuerySm, ReplaceSm};
use rusmpp::tlvs::MessageSubmissionRequestTlvValue;
use rusmpp::types::{AnyOctetString, OctetString};
use rusmpp::values::{MessagePayload, Npi, Ton};
use rusmpp::{Command, CommandId, CommandStatus, Pdu};
use serde_json::Value;
use tokio::io::AsyncWriteExt;

fn ucs2(text: &str) -> Vec<u8> {
    text.encode_utf16().flat_map(u16::to_be_bytes).collect()
}

async fn get_raw(sim: &Sim, path: &str) -> (u16, String, Value) {
    call_raw(sim, reqwest::Method::GET, path).await
}

/// Status, content type and JSON body (Null when there is none) of `method path`.
async fn call_raw(sim: &Sim, method: reqwest::Method, path: &str) -> (u16, String, Value) {
    let response = sim
        .client
        .request(method, format!("{}{path}", sim.http))
        .send()
        .await
        .expect("HTTP answers");
    let status = response.status().as_u16();
    let kind = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (status, kind, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn an_unknown_query_parameter_is_a_400_problem_not_another_phones_code() {
    let sim = start_with("").await;
    let mut link = connect(sim.smpp).await;
    request(&mut link, bind(1, "tester", "pw")).await;
    request(
        &mut link,
        submit(2, "31611111111", 0, b"code 1111".to_vec()),
    )
    .await;
    request(
        &mut link,
        submit(3, "31622222222", 0, b"code 2222".to_vec()),
    )
    .await;
    // Spelled right, the filter works.
    let (status, _, message) = get_raw(&sim, "/api/messages/latest?to=%2B31611111111").await;
    assert_eq!((status, message["otp"].as_str()), (200, Some("1111")));
    // Misspelled, it used to be ignored, and the newest message of any phone came back.
    for path in [
        "/api/messages/latest?too=%2B31611111111",
        "/api/messages?To=%2B31611111111",
        "/api/messages/latest?to=%2B31611111111&wait=5000",
        "/api/messages?limit=many",
        "/api/sessions/drop?acount=tester",
        "/api/pcap?sesion=1",
    ] {
        let (status, kind, problem) = if path.starts_with("/api/sessions/drop") {
            call_raw(&sim, reqwest::Method::POST, path).await
        } else {
            get_raw(&sim, path).await
        };
        assert_eq!(status, 400, "{path}: {problem}");
        assert_eq!(kind, "application/problem+json", "{path}");
        assert_eq!(problem["status"], 400, "{path}");
        assert!(problem["detail"].is_string(), "{path}: {problem}");
        assert!(problem.get("otp").is_none(), "{path}: no message leaks");
    }
    let (_, _, problem) = get_raw(&sim, "/api/messages/latest?too=%2B31611111111").await;
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains("too")),
        "the problem names the parameter: {problem}"
    );
    // A call that takes no parameters refuses them too, and does nothing.
    let response = sim
        .client
        .delete(format!("{}/api/messages?to=%2B31611111111", sim.http))
        .send()
        .await
        .expect("HTTP answers");
    assert_eq!(response.status().as_u16(), 400);
    let (_, listed) = sim.get("/api/messages").await;
    assert_eq!(
        listed.as_array().map(Vec::len),
        Some(2),
        "nothing was cleared"
    );
    let (status, _) = sim.get("/api/stats?verbose=1").await;
    assert_eq!(status, 400);
    // No session was dropped by the misspelled request.
    assert_eq!(
        request(&mut link, submit(4, "31611111111", 0, b"x".to_vec()))
            .await
            .status(),
        CommandStatus::EsmeRok
    );
}

#[tokio::test]
async fn refused_submits_are_recorded_with_their_status() {
    let sim = start_with(
        "[[rules]]\nto_suffix = \"13\"\nsubmit_status = \"ESME_RINVDSTADR\"\n\
         [faults]\nmax_submits_per_second = 1",
    )
    .await;
    let mut link = connect(sim.smpp).await;
    request(&mut link, bind(1, "tester", "pw")).await;
    let accepted = request(&mut link, submit(2, "31612345678", 0, b"code 1".to_vec())).await;
    assert_eq!(accepted.status(), CommandStatus::EsmeRok);
    let throttled = request(&mut link, submit(3, "31612345678", 0, b"code 2".to_vec())).await;
    assert_eq!(throttled.status(), CommandStatus::EsmeRthrottled);
    // What phones received: only the accepted one.
    let (_, listed) = sim.get("/api/messages?to=%2B31612345678").await;
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    assert_eq!(listed[0]["submit_status"], "ESME_ROK");
    let (_, all) = sim
        .get("/api/messages?to=%2B31612345678&refused=true")
        .await;
    let all = all.as_array().cloned().unwrap_or_default();
    assert_eq!(all.len(), 2, "{all:?}");
    assert_eq!(
        (
            all[0]["text"].as_str(),
            all[0]["submit_status"].as_str(),
            all[0]["state"].as_str()
        ),
        (Some("code 2"), Some("ESME_RTHROTTLED"), Some("REJECTD"))
    );
    // A rule's refusal too; and latest never returns a refused submit.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let refused = request(&mut link, submit(4, "31600000013", 0, b"code 3".to_vec())).await;
    assert_eq!(refused.status(), CommandStatus::EsmeRinvdstadr);
    let (status, _) = sim.get("/api/messages/latest?to=%2B31600000013").await;
    assert_eq!(status, 404);
    let (_, listed) = sim
        .get("/api/messages?to=%2B31600000013&refused=true")
        .await;
    assert_eq!(listed[0]["submit_status"], "ESME_RINVDSTADR", "{listed}");
}

/// submit_sm with an 8-bit concatenation UDH (reference 7) for part `seq` of `total`.
fn part(seq: u32, part: u8, total: u8, data: &[u8]) -> Command {
    let mut body = vec![0x05, 0x00, 0x03, 0x07, total, part];
    body.extend_from_slice(data);
    let mut command = submit_with(seq, "31612345678", 0, body, 0);
    if let Some(Pdu::SubmitSm(submit)) = command.pdu() {
        let mut submit = submit.clone();
        submit.esm_class = rusmpp::values::EsmClass::from(0x40u8);
        command = Command::new(CommandStatus::EsmeRok, seq, submit);
    }
    command
}

#[tokio::test]
async fn an_incomplete_concatenated_message_is_listed_with_the_parts_it_has() {
    let sim = start_with("").await;
    let mut link = connect(sim.smpp).await;
    request(&mut link, bind(1, "tester", "pw")).await;
    let first = message_id(&request(&mut link, part(2, 1, 3, b"Your code ")).await);
    let third = message_id(&request(&mut link, part(3, 3, 3, b" - bye")).await);
    let (_, listed) = sim.get("/api/messages?to=%2B31612345678").await;
    let listed = listed.as_array().cloned().unwrap_or_default();
    assert_eq!(listed.len(), 1, "{listed:?}");
    let incomplete = &listed[0];
    assert_eq!(incomplete["incomplete"], true);
    assert_eq!(incomplete["total"], 3);
    assert_eq!(incomplete["missing"], serde_json::json!([2]));
    assert_eq!(incomplete["text"], "Your code  - bye");
    assert_eq!(
        incomplete["parts"],
        serde_json::json!([{ "seq": 1, "id": first }, { "seq": 3, "id": third }])
    );
    // It is no message a phone shows yet.
    let (status, _) = sim.get("/api/messages/latest?to=%2B31612345678").await;
    assert_eq!(status, 404);
    request(&mut link, part(4, 2, 3, b"is 4321")).await;
    let (_, listed) = sim.get("/api/messages?to=%2B31612345678").await;
    let listed = listed.as_array().cloned().unwrap_or_default();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(
        (
            listed[0]["text"].as_str(),
            listed[0].get("incomplete"),
            listed[0]["otp"].as_str()
        ),
        (Some("Your code is 4321 - bye"), None, Some("4321"))
    );
}

fn query(seq: u32, id: &str) -> Command {
    Command::new(
        CommandStatus::EsmeRok,
        seq,
        QuerySm::builder()
            .message_id(c(id))
            .source_addr(c("TEST"))
            .build(),
    )
}

fn cancel(seq: u32, id: &str) -> Command {
    Command::new(
        CommandStatus::EsmeRok,
        seq,
        CancelSm::builder()
            .message_id(c(id))
            .source_addr(c("TEST"))
            .build(),
    )
}

fn replace(seq: u32, id: &str, short_message: Vec<u8>) -> Command {
    Command::new(
        CommandStatus::EsmeRok,
        seq,
        ReplaceSm::builder()
            .message_id(c(id))
            .source_addr(c("TEST"))
            .short_message(OctetString::from_vec(short_message).expect("fits"))
            .build(),
    )
}

#[tokio::test]
async fn cancel_replace_and_query_check_the_bind_and_the_account_first() {
    let sim = start_with(
        "[receipts]\ndelay_ms = 600000\n[[accounts]]\nsystem_id = \"other\"\npassword = \"pw\"",
    )
    .await;
    let mut owner = connect(sim.smpp).await;
    request(&mut owner, bind(1, "tester", "pw")).await;
    let id = message_id(
        &request(
            &mut owner,
            submit_with(2, "31612345678", 0, b"code 1111".to_vec(), 1),
        )
        .await,
    );
    let unchanged = |message: &Value| {
        (
            message["text"].as_str().map(str::to_owned),
            message["state"].as_str().map(str::to_owned),
        )
    };
    let before = unchanged(&sim.get(&format!("/api/messages/{id}")).await.1);
    assert_eq!(
        before,
        (Some("code 1111".to_owned()), Some("ENROUTE".to_owned()))
    );

    // Not bound at all.
    let mut unbound = connect(sim.smpp).await;
    for (command, expected) in [
        (cancel(1, &id), CommandId::CancelSmResp),
        (
            replace(2, &id, b"code 6666".to_vec()),
            CommandId::ReplaceSmResp,
        ),
        (query(3, &id), CommandId::QuerySmResp),
    ] {
        let answer = request(&mut unbound, command).await;
        assert_eq!(
            (answer.id(), answer.status()),
            (expected, CommandStatus::EsmeRinvbndsts)
        );
    }
    // Bound as a receiver of the same account: not a transmitter operation's bind.
    let mut receiver = connect(sim.smpp).await;
    request(&mut receiver, bind_receiver(1, "tester", "pw")).await;
    assert_eq!(
        request(&mut receiver, cancel(2, &id)).await.status(),
        CommandStatus::EsmeRinvbndsts
    );
    // Another account: the message is not its to see or change.
    let mut other = connect(sim.smpp).await;
    request(&mut other, bind(1, "other", "pw")).await;
    assert_eq!(
        request(&mut other, cancel(2, &id)).await.status(),
        CommandStatus::EsmeRinvmsgid
    );
    assert_eq!(
        request(&mut other, replace(3, &id, b"code 6666".to_vec()))
            .await
            .status(),
        CommandStatus::EsmeRinvmsgid
    );
    let answer = request(&mut other, query(4, &id)).await;
    assert_eq!(answer.status(), CommandStatus::EsmeRqueryfail);
    assert!(answer.pdu().is_none(), "an error query_sm_resp has no body");

    let after = unchanged(&sim.get(&format!("/api/messages/{id}")).await.1);
    assert_eq!(after, before, "nobody but the owner changed it");
    // The owner still can.
    assert_eq!(
        request(&mut owner, cancel(3, &id)).await.status(),
        CommandStatus::EsmeRok
    );
}

#[tokio::test]
async fn replace_sm_keeps_the_messages_data_coding() {
    let sim = start_with("[receipts]\ndelay_ms = 600000").await;
    let mut link = connect(sim.smpp).await;
    request(&mut link, bind(1, "tester", "pw")).await;
    let id = message_id(&request(&mut link, submit(2, "31612345678", 8, ucs2("Код 1111"))).await);
    let answer = request(&mut link, replace(3, &id, ucs2("Код 2222"))).await;
    assert_eq!(answer.status(), CommandStatus::EsmeRok);
    let (_, message) = sim.get(&format!("/api/messages/{id}")).await;
    assert_eq!(
        (
            message["text"].as_str(),
            message["otp"].as_str(),
            message["data_coding"].as_u64()
        ),
        (Some("Код 2222"), Some("2222"), Some(8))
    );
}

fn with_payload(mut command: Command, payload: &[u8]) -> Command {
    if let Some(Pdu::SubmitSm(submit)) = command.pdu() {
        let mut submit = submit.clone();
        submit.push_tlv(MessageSubmissionRequestTlvValue::MessagePayload(
            MessagePayload::new(AnyOctetString::from_vec(payload.to_vec())),
        ));
        command = Command::new(CommandStatus::EsmeRok, command.sequence_number(), submit);
    }
    command
}

#[tokio::test]
async fn submits_a_carrier_refuses_are_refused_with_header_only_responses() {
    let sim = start_with("").await;
    let mut link = connect(sim.smpp).await;
    request(&mut link, bind(1, "tester", "pw")).await;
    let cases = [
        (
            submit(2, "31612345678", 4, vec![b'x'; 141]),
            CommandStatus::EsmeRinvmsglen,
        ),
        (
            submit(10, "31612345678", 0, vec![b'x'; 161]),
            CommandStatus::EsmeRinvmsglen,
        ),
        (
            submit(3, "", 0, b"code 1234".to_vec()),
            CommandStatus::EsmeRinvdstadr,
        ),
        (
            submit(4, "3161234567812345", 0, b"code 1234".to_vec()),
            CommandStatus::EsmeRinvdstadr,
        ),
        (
            with_payload(submit(5, "31612345678", 0, b"code".to_vec()), b"code 1234"),
            CommandStatus::EsmeRinvmsglen,
        ),
    ];
    for (command, expected) in cases {
        let seq = command.sequence_number();
        let answer = request(&mut link, command).await;
        assert_eq!(
            (answer.id(), answer.sequence_number(), answer.status()),
            (CommandId::SubmitSmResp, seq, expected)
        );
        assert!(answer.pdu().is_none(), "{expected:?}: no body");
    }
    // The limits themselves are fine: 140 octets (160 septets), 15 digits, message_payload
    // alone.
    for command in [
        submit(6, "31612345678", 4, vec![b'x'; 140]),
        submit(11, "31612345678", 0, vec![b'x'; 160]),
        submit(7, "316123456781234", 0, b"code 1234".to_vec()),
        with_payload(submit(8, "31612345678", 0, Vec::new()), b"code 1234"),
    ] {
        assert_eq!(
            request(&mut link, command).await.status(),
            CommandStatus::EsmeRok
        );
    }
    // data_sm errors are header-only as well.
    let data = DataSm::builder()
        .source_addr(c("TEST"))
        .dest_addr_ton(Ton::International)
        .dest_addr_npi(Npi::Isdn)
        .destination_addr(c("3161234567812345"))
        .build();
    let answer = request(&mut link, Command::new(CommandStatus::EsmeRok, 9, data)).await;
    assert_eq!(
        (answer.id(), answer.status()),
        (CommandId::DataSmResp, CommandStatus::EsmeRinvdstadr)
    );
    assert!(answer.pdu().is_none());
}

#[tokio::test]
async fn a_lenient_simulator_takes_what_a_carrier_would_refuse() {
    let sim = start_with_smpp("lenient = true", "").await;
    let mut link = connect(sim.smpp).await;
    request(&mut link, bind(1, "tester", "pw")).await;
    for command in [
        submit(2, "31612345678", 4, vec![b'x'; 141]),
        submit(3, "3161234567812345", 0, b"code 1234".to_vec()),
        with_payload(submit(4, "31612345678", 0, b"code".to_vec()), b"code 1234"),
    ] {
        assert_eq!(
            request(&mut link, command).await.status(),
            CommandStatus::EsmeRok
        );
    }
}

fn deliver_sm_resp(seq: u32, status: CommandStatus) -> Command {
    Command::new(status, seq, DeliverSmResp::default())
}

#[tokio::test]
async fn a_refused_receipt_comes_again_after_a_back_off_not_at_once() {
    let sim = start_with("[receipts]\nredeliver_initial_ms = 1000").await;
    let mut link = connect(sim.smpp).await;
    request(&mut link, bind_receiver(1, "tester", "pw")).await;
    let mut transmitter = connect(sim.smpp).await;
    request(&mut transmitter, bind_transmitter(1, "tester", "pw")).await;
    request(
        &mut transmitter,
        submit_with(2, "31612345678", 0, b"x".to_vec(), 1),
    )
    .await;
    let (seq, _) = next_deliver_sm(&mut link).await;
    link.send(&deliver_sm_resp(seq, CommandStatus::EsmeRxTAppn))
        .await
        .expect("refuse");
    // Before: the same receipt again within a millisecond, for ever.
    assert!(
        tokio::time::timeout(Duration::from_millis(500), link.next())
            .await
            .is_err(),
        "redelivered without a back-off"
    );
    let (again, _) = next_deliver_sm(&mut link).await;
    link.send(&deliver_sm_resp(again, CommandStatus::EsmeRok))
        .await
        .expect("ack");
    assert!(
        tokio::time::timeout(Duration::from_millis(1500), link.next())
            .await
            .is_err(),
        "acknowledged: no third delivery"
    );
}

#[tokio::test]
async fn a_receipt_refused_too_often_is_given_up_and_counted() {
    let sim = start_with(
        "[receipts]\nredeliver_initial_ms = 20\nredeliver_max_ms = 40\nmax_redeliveries = 2",
    )
    .await;
    let mut receiver = connect(sim.smpp).await;
    request(&mut receiver, bind_receiver(1, "tester", "pw")).await;
    let mut transmitter = connect(sim.smpp).await;
    request(&mut transmitter, bind_transmitter(1, "tester", "pw")).await;
    request(
        &mut transmitter,
        submit_with(2, "31612345678", 0, b"x".to_vec(), 1),
    )
    .await;
    // Refused three times (the first delivery and two redeliveries), by nack and by status.
    for round in 0..3 {
        let (seq, _) = next_deliver_sm(&mut receiver).await;
        let refusal = if round == 1 {
            Command::new(CommandStatus::EsmeRsyserr, seq, Pdu::GenericNack)
        } else {
            deliver_sm_resp(seq, CommandStatus::EsmeRxPAppn)
        };
        receiver.send(&refusal).await.expect("refuse");
    }
    assert!(
        tokio::time::timeout(Duration::from_millis(500), receiver.next())
            .await
            .is_err(),
        "given up"
    );
    let metrics = sim.text("/metrics").await;
    assert!(
        metrics
            .lines()
            .any(|l| l == "smsc_sim_receipts_dropped_total 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn outbound_deliver_sm_honours_the_window() {
    let sim = start_with_smpp("window = 2", "").await;
    let mut receiver = connect(sim.smpp).await;
    request(&mut receiver, bind_receiver(1, "tester", "pw")).await;
    let mut transmitter = connect(sim.smpp).await;
    request(&mut transmitter, bind_transmitter(1, "tester", "pw")).await;
    for seq in 2..7 {
        request(
            &mut transmitter,
            submit_with(seq, "31612345678", 0, b"x".to_vec(), 1),
        )
        .await;
    }
    let (first, _) = next_deliver_sm(&mut receiver).await;
    let (_second, _) = next_deliver_sm(&mut receiver).await;
    // Two out and unanswered: the third waits.
    assert!(
        tokio::time::timeout(Duration::from_millis(500), receiver.next())
            .await
            .is_err(),
        "a third deliver_sm beyond the window"
    );
    receiver
        .send(&deliver_sm_resp(first, CommandStatus::EsmeRok))
        .await
        .expect("ack");
    let (third, _) = next_deliver_sm(&mut receiver).await;
    assert!(third > first);
    assert!(
        tokio::time::timeout(Duration::from_millis(300), receiver.next())
            .await
            .is_err(),
        "one slot freed, one deliver_sm"
    );
}

fn raw(id: u32, status: u32, seq: u32, body: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::new();
    bytes.extend_from_slice(&(16 + body.len() as u32).to_be_bytes());
    bytes.extend_from_slice(&id.to_be_bytes());
    bytes.extend_from_slice(&status.to_be_bytes());
    bytes.extend_from_slice(&seq.to_be_bytes());
    bytes.extend_from_slice(body);
    bytes
}

#[tokio::test]
async fn responses_are_never_nacked_even_when_their_body_is_malformed() {
    let sim = start_with("[receipts]\nredeliver_initial_ms = 50").await;
    let mut receiver = connect(sim.smpp).await;
    request(&mut receiver, bind_receiver(1, "tester", "pw")).await;
    let mut transmitter = connect(sim.smpp).await;
    request(&mut transmitter, bind_transmitter(1, "tester", "pw")).await;
    request(
        &mut transmitter,
        submit_with(2, "31612345678", 0, b"x".to_vec(), 1),
    )
    .await;
    let (seq, _) = next_deliver_sm(&mut receiver).await;
    // A deliver_sm_resp whose message_id has no NUL: its body does not decode, its header says
    // ESME_ROK for our deliver_sm. And a submit_sm_resp nobody asked for, just as broken.
    let stream = receiver.get_mut();
    stream
        .write_all(&raw(0x8000_0005, 0, seq, b"abc"))
        .await
        .expect("write");
    stream
        .write_all(&raw(0x8000_0004, 0, 77, b"xyz"))
        .await
        .expect("write");
    let answer = request(
        &mut receiver,
        Command::new(CommandStatus::EsmeRok, 99, Pdu::EnquireLink),
    )
    .await;
    assert_eq!(
        (answer.id(), answer.sequence_number()),
        (CommandId::EnquireLinkResp, 99),
        "no generic_nack came first"
    );
    // The malformed response still acknowledged the receipt: it does not come again.
    assert!(
        tokio::time::timeout(Duration::from_millis(500), receiver.next())
            .await
            .is_err(),
        "the receipt was redelivered"
    );
    let (_, stats) = sim.get("/api/stats").await;
    assert_eq!(stats["generic_nacks"], 0);
}

type Coded = (u8, Vec<u8>, &'static str, &'static str, Option<u64>);

#[tokio::test]
async fn data_codings_decode_with_their_message_class() {
    let sim = start_with("").await;
    let mut link = connect(sim.smpp).await;
    request(&mut link, bind(1, "tester", "pw")).await;
    // (data_coding, short_message, text, alphabet, message class)
    let cases: [Coded; 6] = [
        (0x18, ucs2("Код 1234"), "Код 1234", "ucs2", Some(0)),
        (
            0x06,
            vec![0xBF, 0xE0, 0xD8, 0xD2, 0xD5, 0xE2],
            "Привет",
            "cyrillic",
            None,
        ),
        (0x07, vec![0xF9, 0xEC, 0xE5, 0xED], "שלום", "hebrew", None),
        (0x03, vec![0x63, 0x61, 0x66, 0xE9], "café", "latin1", None),
        (0xF1, vec![0x00, 0x11, b'1'], "@_1", "gsm7", Some(1)),
        (0x12, vec![0x02, b'5'], "$5", "gsm7", Some(2)),
    ];
    for (index, (data_coding, bytes, text, alphabet, class)) in cases.into_iter().enumerate() {
        let seq = 2 + index as u32;
        let id =
            message_id(&request(&mut link, submit(seq, "31612345678", data_coding, bytes)).await);
        let (_, message) = sim.get(&format!("/api/messages/{id}")).await;
        assert_eq!(
            (
                message["text"].as_str(),
                message["alphabet"].as_str(),
                message["message_class"].as_u64(),
                message["flash"].as_bool()
            ),
            (Some(text), Some(alphabet), class, Some(class == Some(0))),
            "data_coding {data_coding:#04x}"
        );
    }
}

#[tokio::test]
async fn receipts_queued_behind_a_full_window_survive_the_session() {
    let sim = start_with_smpp("window = 1", "").await;
    let mut transmitter = connect(sim.smpp).await;
    request(&mut transmitter, bind_transmitter(1, "tester", "pw")).await;
    let mut first = connect(sim.smpp).await;
    request(&mut first, bind_receiver(1, "tester", "pw")).await;
    let mut ids = Vec::new();
    for seq in 2..5 {
        ids.push(message_id(
            &request(
                &mut transmitter,
                submit_with(seq, "31612345678", 0, b"x".to_vec(), 1),
            )
            .await,
        ));
    }
    // One is out unanswered, two wait behind it; then the receiver goes away.
    next_deliver_sm(&mut first).await;
    drop(first);
    let mut second = connect(sim.smpp).await;
    request(&mut second, bind_receiver(1, "tester", "pw")).await;
    let mut received = Vec::new();
    for _ in 0..3 {
        let (seq, receipt) = next_deliver_sm(&mut second).await;
        second
            .send(&deliver_sm_resp(seq, CommandStatus::EsmeRok))
            .await
            .expect("ack");
        let id = receipt.tlvs().iter().find_map(|tlv| match tlv.value() {
            Some(rusmpp::tlvs::TlvValue::ReceiptedMessageId(id)) => Some(id.as_str().to_owned()),
            _ => None,
        });
        received.push(id.expect("a receipted_message_id"));
    }
    received.sort();
    ids.sort();
    assert_eq!(
        received, ids,
        "every receipt, none lost with the first session"
    );
}
