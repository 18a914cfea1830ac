//! `/v1/otp/verify` takes as long for a number with no code as for one with a wrong code or
//! the right one: Welch's t over the wall-clock times of interleaved requests of the three
//! classes stays under |t| = 4.5 (the threshold dudect uses). The samples are bounded
//! (`PER_CLASS` per class, after a warm-up, two requests in flight); each class is cropped at
//! the same pooled percentile, as dudect does, so that a scheduler hiccup does not decide it.
//!
//! The three classes do the same work (`OtpService::verify`: one stand-in judged for no code,
//! one path through the failure record, a presized table; callgrind counts agree within 2 %),
//! and the shipped `verify_floor_ms` (2 ms) hides what remains, the memory a pending code's
//! lookup touches (about 1 µs in a release build, measured without the floor). Every class
//! must answer at or after the floor. The test states its power: the smallest difference of
//! means it would flag (4.5 standard errors; the floor's timer ticks of 1 ms make it tens of
//! microseconds), and fails if that is so large that the test would prove nothing.

mod common;

use std::time::Instant;

use common::{API_KEY, Daemon, Options, Sim};
use futures_util::StreamExt;
use reqwest::StatusCode;
use serde_json::json;

const PER_CLASS: usize = 3000;
const WARM_UP: usize = 200;
const THRESHOLD: f64 = 4.5;
/// Samples above this pooled percentile are cropped from every class alike.
const CROP_PERCENTILE: f64 = 0.95;
/// The test must be able to see a difference of this many microseconds.
const MAX_DETECTABLE_US: f64 = 100.0;
/// Requests in flight at once.
const IN_FLIGHT: usize = 2;
/// The shipped `[otp] verify_floor_ms`.
const FLOOR_US: f64 = 2000.0;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    NoCode,
    Wrong,
    Right,
}

struct Stats {
    mean: f64,
    variance: f64,
    n: f64,
}

fn stats(samples: &[f64]) -> Stats {
    let n = samples.len() as f64;
    let mean = samples.iter().sum::<f64>() / n;
    let variance = samples.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    Stats { mean, variance, n }
}

/// Welch's t of two samples, and the standard error of the difference of their means.
fn welch(a: &[f64], b: &[f64]) -> (f64, f64) {
    let (a, b) = (stats(a), stats(b));
    let se = (a.variance / a.n + b.variance / b.n).sqrt();
    ((a.mean - b.mean) / se, se)
}

/// A shuffle from the OS's randomness (Fisher-Yates).
fn shuffle<T>(items: &mut [T]) {
    for i in (1..items.len()).rev() {
        let mut bytes = [0u8; 8];
        getrandom::fill(&mut bytes).expect("OS randomness");
        let j = (u64::from_le_bytes(bytes) % (i as u64 + 1)) as usize;
        items.swap(i, j);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_takes_as_long_with_no_code_a_wrong_code_or_the_right_one() {
    let sim = Sim::start().await;
    let mut options = Options::new(sim.smpp);
    // Only the timing is under test: no limit may refuse a sample.
    options.limits = "send_burst = 1000000\nverify_burst = 1000000\n\
                      global_sends_per_second = 1000000\nclient_sends_per_second = 1000000"
        .into();
    let daemon = Daemon::start_bound(options).await;

    // Codes for the wrong and the right class, one number each (a number's second wrong code
    // would count against its attempts and its failure record differently).
    let with_code = |n: usize| format!("+3162{n:07}");
    for chunk in (0..2 * PER_CLASS).collect::<Vec<_>>().chunks(64) {
        let phones: Vec<String> = chunk.iter().map(|&n| with_code(n)).collect();
        let sends = phones.iter().map(|phone| daemon.send(phone));
        for (status, body) in futures_util::future::join_all(sends).await {
            assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        }
    }
    let mut samples: Vec<(Class, String, String)> = Vec::with_capacity(3 * PER_CLASS);
    let phones: Vec<String> = (0..2 * PER_CLASS).map(with_code).collect();
    for (chunk_start, chunk) in phones.chunks(64).enumerate() {
        let codes =
            futures_util::future::join_all(chunk.iter().map(|phone| sim.code_for(phone))).await;
        for (i, (phone, code)) in chunk.iter().zip(codes).enumerate() {
            let (class, code) = if (chunk_start * 64 + i) % 2 == 0 {
                (Class::Right, code)
            } else {
                (Class::Wrong, common::wrong_code(&code))
            };
            samples.push((class, phone.clone(), code));
        }
    }
    for n in 0..PER_CLASS {
        samples.push((
            Class::NoCode,
            with_code(n + 2 * PER_CLASS),
            "123456".to_owned(),
        ));
    }
    shuffle(&mut samples);

    let url = format!("{}/v1/otp/verify", daemon.url);
    let verify = |phone: String, code: String| {
        daemon
            .client
            .post(&url)
            .bearer_auth(API_KEY)
            .json(&json!({ "phone": phone, "code": code }))
            .send()
    };
    for n in 0..WARM_UP {
        let response = verify(format!("+3164{n:07}"), "123456".to_owned())
            .await
            .expect("daemon answers");
        assert_eq!(response.status(), StatusCode::OK);
        response.bytes().await.expect("body");
    }
    let verify = &verify;
    let times: Vec<(Class, f64)> = futures_util::stream::iter(samples)
        .map(|(class, phone, code)| async move {
            let started = Instant::now();
            let response = verify(phone, code).await.expect("daemon answers");
            let status = response.status();
            let body = response.bytes().await.expect("body");
            let elapsed = started.elapsed();
            assert_eq!(status, StatusCode::OK);
            let verdict: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
            let expected = match class {
                Class::NoCode => "not_found",
                Class::Wrong => "denied",
                Class::Right => "approved",
            };
            assert_eq!(verdict["status"], expected, "{class:?}");
            (class, elapsed.as_secs_f64() * 1e6)
        })
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await;
    for class in [Class::NoCode, Class::Wrong, Class::Right] {
        let fastest = times
            .iter()
            .filter(|(c, _)| *c == class)
            .map(|(_, t)| *t)
            .fold(f64::INFINITY, f64::min);
        assert!(
            fastest >= FLOOR_US,
            "{class:?} answered in {fastest:.0} µs, under the floor"
        );
    }

    let mut pooled: Vec<f64> = times.iter().map(|(_, t)| *t).collect();
    pooled.sort_by(f64::total_cmp);
    let crop = pooled[((pooled.len() as f64) * CROP_PERCENTILE) as usize];
    let class = |wanted: Class| -> Vec<f64> {
        times
            .iter()
            .filter(|(c, t)| *c == wanted && *t <= crop)
            .map(|(_, t)| *t)
            .collect()
    };
    let (none, wrong, right) = (
        class(Class::NoCode),
        class(Class::Wrong),
        class(Class::Right),
    );
    for (name, set) in [("no code", &none), ("wrong", &wrong), ("right", &right)] {
        // The crop is pooled: a class that lost far more than its share to it is slower.
        assert!(
            set.len() * 100 >= PER_CLASS * 85,
            "the crop at {crop:.1} µs took {} of {PER_CLASS} '{name}' samples",
            PER_CLASS - set.len()
        );
    }
    let mut worst_se: f64 = 0.0;
    for (name, a, b) in [
        ("no code vs wrong", &none, &wrong),
        ("wrong vs right", &wrong, &right),
        ("no code vs right", &none, &right),
    ] {
        let (t, se) = welch(a, b);
        worst_se = worst_se.max(se);
        eprintln!(
            "{name}: t = {t:+.2}, means {:.1} / {:.1} µs, detectable ≥ {:.2} µs",
            stats(a).mean,
            stats(b).mean,
            THRESHOLD * se
        );
        assert!(t.abs() < THRESHOLD, "{name}: |t| = {:.2}", t.abs());
    }
    assert!(
        THRESHOLD * worst_se < MAX_DETECTABLE_US,
        "too noisy to see a {MAX_DETECTABLE_US} µs leak (detectable: {:.1} µs)",
        THRESHOLD * worst_se
    );
    daemon.stop().await;
}
