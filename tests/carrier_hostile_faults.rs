//! Every message reaches exactly one final state whatever the SMSC does (issue 9, defect 5): a
//! property test over seeded random fault schedules. Per submit_sm the hostile SMSC answers OK
//! (with or without a receipt), sends the receipt before the response, refuses temporarily or
//! permanently, withholds the response, or drops the connection. A binary of its own, because
//! `otpgate_sms_in_progress` is one gauge per process.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::hostile::{Hostile, HostileOptions, Peer};
use common::{Daemon, Options, SMS_KEY, sample};
use reqwest::StatusCode;
use rusmpp::CommandStatus;
use serde_json::{Value, json};

const SEEDS: [u64; 5] = [1, 2, 3, 5, 8];
const MESSAGES: usize = 20;
/// Bounds the whole schedule: 1 s validity (so that responses time out after it, in flight), a
/// 2 s receipt wait, 1 s sweeps, reconnects.
const SETTLE: Duration = Duration::from_secs(20);

/// splitmix64: a seeded, reproducible schedule without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Answers one connection's submits by the schedule until the connection ends or it drops it.
async fn serve(mut peer: Peer, mut rng: Rng, seed: u64) {
    let mut n = 0u32;
    while let Some(frame) = peer.next_within(Duration::from_secs(60)).await {
        let Some(submit) = frame.submit() else {
            continue;
        };
        n += 1;
        let message_id = format!("s{seed}c{}n{n}", peer.connection);
        let stat = if rng.below(10) < 7 {
            "DELIVRD"
        } else {
            "UNDELIV"
        };
        match rng.below(100) {
            0..30 => {
                peer.accept(submit.seq, &message_id);
                peer.deliver_receipt(&message_id, stat);
            }
            30..35 => peer.accept(submit.seq, &message_id),
            35..45 => {
                peer.deliver_receipt(&message_id, stat);
                peer.accept(submit.seq, &message_id);
            }
            45..60 => {
                let status = match rng.below(3) {
                    0 => CommandStatus::EsmeRthrottled,
                    1 => CommandStatus::EsmeRmsgqful,
                    _ => CommandStatus::EsmeRsyserr,
                };
                peer.refuse(submit.seq, status);
            }
            60..70 => peer.refuse(submit.seq, CommandStatus::EsmeRinvdstadr),
            70..90 => {} // withheld
            _ => {
                peer.close();
                return;
            }
        }
    }
}

/// Every message's record, once all are final (bounded by SETTLE).
async fn finals(daemon: &Daemon, ids: &[String]) -> Result<Vec<Value>, String> {
    let deadline = Instant::now() + SETTLE;
    let mut records = Vec::new();
    for id in ids {
        loop {
            let (_, body) = daemon.get_json(&format!("/v1/sms/{id}")).await;
            let record = body["delivery"].clone();
            if record["done_at"].is_string() {
                records.push(record);
                break;
            }
            if Instant::now() >= deadline {
                return Err(format!("{id} not final within {SETTLE:?}: {record}"));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    Ok(records)
}

fn histogram(records: &[Value]) -> BTreeMap<String, usize> {
    let mut states = BTreeMap::new();
    for record in records {
        *states
            .entry(record["state"].as_str().unwrap_or("?").to_owned())
            .or_default() += 1;
    }
    states
}

/// One seed's schedule against a daemon of its own; returns the daemon (still running) and
/// the final states, or what went wrong.
async fn run(seed: u64) -> (Daemon, Result<BTreeMap<String, usize>, String>) {
    let smsc = Arc::new(
        Hostile::start_with(HostileOptions {
            auto_bind: true,
            ..HostileOptions::default()
        })
        .await,
    );
    let mut options = Options::new(smsc.addr);
    options.carrier_extra = "registered_delivery = 1\nwindow = 5\nresponse_timeout_ms = 500\n\
         throttle_pause_ms = 50\nenquire_link_interval_ms = 500\nbreaker_failures = 1000"
        .into();
    options.delivery_extra = "sms_validity_seconds = 1\nreceipt_wait_seconds = 2".into();
    options.otp_extra = "sweep_interval_seconds = 1".into();
    let daemon = Daemon::start(options).await;
    // Messages' deadlines are on the daemon's injected clock: here it follows real time, so
    // that the 1 s validity runs out while the faults go on.
    let ticking = {
        let clock = daemon.clock.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(50)).await;
                clock.advance(Duration::from_millis(50));
            }
        })
    };
    let acceptor = {
        let smsc = smsc.clone();
        tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            while let Some(peer) = smsc.accept_within(Duration::from_secs(60)).await {
                let rng = Rng(seed.wrapping_mul(1_000_003) ^ peer.connection as u64);
                connections.spawn(serve(peer, rng, seed));
            }
        })
    };
    daemon.wait_bound(true).await;
    let sends = (0..MESSAGES).map(|n| {
        daemon.post_with(
            SMS_KEY,
            "/v1/sms",
            json!({ "to": format!("+316120{seed:02}{n:03}"), "text": format!("seed {seed} message {n}") }),
        )
    });
    let ids: Vec<String> = futures_util::future::join_all(sends)
        .await
        .into_iter()
        .map(|(status, body)| {
            assert_eq!(status, StatusCode::ACCEPTED, "{body}");
            body["id"].as_str().expect("id").to_owned()
        })
        .collect();
    let outcome = async {
        let first = finals(&daemon, &ids).await?;
        // Exactly one final state: nothing changes a final record afterwards (late receipts,
        // late responses and resends of this schedule have had their time by now).
        tokio::time::sleep(Duration::from_millis(500)).await;
        let second = finals(&daemon, &ids).await?;
        for (id, (a, b)) in ids.iter().zip(first.iter().zip(&second)) {
            if a != b {
                return Err(format!("{id} changed after it was final: {a} -> {b}"));
            }
        }
        let deadline = Instant::now() + SETTLE;
        loop {
            let (status, body) = daemon.get_json("/readyz").await;
            if status == StatusCode::OK {
                match body["messages_in_progress"].as_u64() {
                    Some(0) => break,
                    other => return Err(format!("messages_in_progress {other:?} at the end")),
                }
            }
            if Instant::now() >= deadline {
                return Err(format!("never ready again: {body}"));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(histogram(&first))
    }
    .await;
    acceptor.abort();
    ticking.abort();
    (daemon, outcome.map_err(|err| format!("seed {seed}: {err}")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_message_ends_in_exactly_one_final_state_under_random_fault_schedules() {
    let runs = futures_util::future::join_all(SEEDS.map(run)).await;
    let mut failures = Vec::new();
    for (_, outcome) in &runs {
        match outcome {
            Ok(states) => {
                let total: usize = states.values().sum();
                assert_eq!(total, MESSAGES, "{states:?}");
            }
            Err(err) => failures.push(err.clone()),
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    let (_, text) = runs[0].0.get_text("/metrics").await;
    assert_eq!(
        sample(&text, otpgate::metrics::SMS_IN_PROGRESS, &[]),
        Some(0.0),
        "the in-progress gauge returned to 0"
    );
    for (daemon, _) in runs {
        daemon.stop().await;
    }
}
