//! In-process costs of the per-request paths: phone parsing, issuing and verifying codes, rate
//! limits, and the SMPP encode/decode of a submit_sm. Run: `cargo bench --bench hot_paths`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use otpgate::carrier::{OutboundSms, submit_parts};
use otpgate::clock::SystemClock;
use otpgate::config::Config;
use otpgate::otp::{Code, CodeMac, MemoryStore, OsEntropy, OtpService, Policy};
use otpgate::phone::PhoneNumber;
use otpgate::ratelimit::RateLimits;
use rusmpp::{Command, CommandStatus};
use smpp_wire::FrameCodec;
use tokio_util::codec::{Decoder, Encoder};

fn numbers(count: usize) -> Vec<PhoneNumber> {
    (0..count)
        .map(|n| PhoneNumber::parse(&format!("+316{n:08}")).expect("valid"))
        .collect()
}

fn policy() -> Policy {
    Policy {
        code_length: 6,
        ttl: Duration::from_secs(300),
        max_attempts: 5,
    }
}

fn service() -> OtpService {
    OtpService::new(
        Arc::new(MemoryStore::new(10_000_000)),
        CodeMac::new(&[7u8; 32]).expect("long enough"),
        Arc::new(OsEntropy),
        Arc::new(SystemClock),
        policy(),
        // Unlimited, so that repeated wrong guesses measure the comparison, not a lock.
        otpgate::otp::GuessPolicy {
            max_consecutive_failures: u32::MAX,
            max_failures_per_day: u32::MAX,
            ..otpgate::otp::GuessPolicy::default()
        },
    )
}

fn otp(c: &mut Criterion) {
    let mut group = c.benchmark_group("otp");
    group.throughput(Throughput::Elements(1));
    group.bench_function("phone_parse", |b| {
        b.iter(|| PhoneNumber::parse(black_box("+31 6 1234 5678")))
    });
    group.bench_function("code_generate", |b| {
        b.iter(|| Code::generate(&OsEntropy, 6))
    });

    let phones = numbers(100_000);
    let otp = service();
    let mut next = 0usize;
    group.bench_function("issue", |b| {
        b.iter(|| {
            next = (next + 1) % phones.len();
            otp.issue(&phones[next])
        })
    });
    let wrong = Code::parse("000000", 6).expect("six digits");
    group.bench_function("verify_denied", |b| {
        // A fresh challenge per batch keeps every measured attempt a real compare.
        b.iter_custom(|iterations| {
            let mut elapsed = Duration::ZERO;
            for i in 0..iterations {
                let phone = &phones[(i as usize) % phones.len()];
                otp.issue(phone).expect("issued");
                let start = Instant::now();
                black_box(otp.verify(phone, &wrong));
                elapsed += start.elapsed();
            }
            elapsed
        })
    });
    group.bench_function("issue_then_approve", |b| {
        b.iter(|| {
            next = (next + 1) % phones.len();
            let issued = otp.issue(&phones[next]).expect("issued");
            otp.verify(&phones[next], &issued.code)
        })
    });
    group.finish();
}

fn limits(c: &mut Criterion) {
    let config = Config::load(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/otpgate.toml"
    )))
    .expect("shipped config");
    let mut lenient = config.limits.clone();
    lenient.global_sends_per_second = std::num::NonZeroU32::MAX;
    lenient.client_sends_per_second = std::num::NonZeroU32::MAX;
    lenient.ip_send.burst = std::num::NonZeroU32::MAX;
    // The daemon's own arrangement: on its clock, one budget per configured client, and a
    // sender with a source address (every per-sender check runs).
    let limits = RateLimits::with_clock(
        lenient,
        &config.clients,
        otpgate::clock::Governed::new(Arc::new(SystemClock)),
    );
    let sender = otpgate::ratelimit::Sender {
        client: &config.clients[0].name,
        ip: Some(std::net::IpAddr::from([203, 0, 113, 7])),
    };
    let phones = numbers(100_000);
    let mut next = 0usize;
    let mut group = c.benchmark_group("ratelimit");
    group.throughput(Throughput::Elements(1));
    group.bench_function("check_send_distinct_numbers", |b| {
        b.iter(|| {
            next = (next + 1) % phones.len();
            limits.check_send(&phones[next], sender)
        })
    });
    group.finish();

    // The pumping rules a send passes, with the shipped config's policy (velocity opened wide,
    // so that repeated sends measure the checks, not refusals).
    let mut policy = config.pumping;
    policy.velocity.prefix.burst = std::num::NonZeroU32::MAX;
    policy.velocity.default_country_daily = u32::MAX;
    let pumping = otpgate::pumping::Pumping::new(policy, Arc::new(SystemClock));
    let mut group = c.benchmark_group("pumping");
    group.throughput(Throughput::Elements(1));
    group.bench_function("phone_parse_trunk_prefix", |b| {
        b.iter(|| PhoneNumber::parse(black_box("+31 (0)6 1234 5678")))
    });
    group.bench_function("destination_permitted", |b| {
        b.iter(|| {
            next = (next + 1) % phones.len();
            pumping.permitted(&phones[next])
        })
    });
    group.bench_function("admit_and_queued", |b| {
        b.iter(|| {
            next = (next + 1) % phones.len();
            let admitted = pumping.admit(&phones[next]);
            pumping.queued(&phones[next], true);
            admitted
        })
    });
    group.finish();
}

fn wire(c: &mut Criterion) {
    let config = Config::load(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/otpgate.toml"
    )))
    .expect("shipped config");
    let sms = OutboundSms {
        id: "5b6fc037d39e1489e7d220acb208ec73".to_owned(),
        to: PhoneNumber::parse("+31612345678").expect("valid"),
        from: None,
        text: "Your verification code is 012345. It expires in 5 minutes.".to_owned(),
        deadline: Instant::now() + Duration::from_secs(300),
        superseded: None,
        unanswered_writes: 0,
    };
    let mut codec = FrameCodec::new(65_536);
    let mut group = c.benchmark_group("smpp");
    group.throughput(Throughput::Elements(1));
    let mut buf = BytesMut::with_capacity(1 << 16);
    group.bench_function("submit_sm_build_and_encode", |b| {
        b.iter(|| {
            buf.clear();
            let body = submit_parts(&config.carriers[0], &sms, 1, Instant::now())
                .expect("encodable")
                .remove(0);
            codec
                .encode(&Command::new(CommandStatus::EsmeRok, 7, body), &mut buf)
                .expect("encode");
        })
    });
    let mut frame = BytesMut::new();
    let body = submit_parts(&config.carriers[0], &sms, 1, Instant::now())
        .expect("encodable")
        .remove(0);
    codec
        .encode(&Command::new(CommandStatus::EsmeRok, 7, body), &mut frame)
        .expect("encode");
    group.bench_function("submit_sm_frame_decode", |b| {
        b.iter(|| {
            let mut input = frame.clone();
            codec.decode(&mut input).expect("decodes")
        })
    });
    group.finish();
}

/// A sign-in start for a ready number against a plain issue: the index lookup, the flow and the
/// decoy's same-work path are what sign-in adds in-process.
fn signin(c: &mut Criterion) {
    use otpgate::directory::sqlite::SqliteDirectory;
    use otpgate::directory::{Actor, Directory, NewUser, PhoneType};
    use otpgate::signin::{SignIn, SignInSettings, SigningAlg, SigningKey, SigningKeys};

    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let directory = SqliteDirectory::open(&dir.path().join("bench.db")).expect("opens");
    let phones = numbers(1_000);
    runtime.block_on(async {
        let admin = Actor("bench".to_owned());
        directory
            .create_tenant(&admin, Some("bench".to_owned()), "Bench".to_owned())
            .await
            .expect("tenant");
        let policy = otpgate::directory::policy::SmsPolicyPatch {
            state: Some(otpgate::directory::policy::PolicyState::Enabled),
            ..Default::default()
        };
        directory
            .update_sms_policy(&admin, "bench", policy)
            .await
            .expect("policy");
        for (n, phone) in phones.iter().enumerate() {
            let user = directory
                .create_user(
                    &admin,
                    "bench",
                    NewUser {
                        display_name: format!("User {n}"),
                        user_principal_name: format!("u{n}@bench.test"),
                        account_enabled: true,
                    },
                )
                .await
                .expect("user");
            directory
                .add_phone_method(&admin, "bench", &user.id, PhoneType::Mobile, phone.clone())
                .await
                .expect("method");
        }
    });
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).expect("key");
    let keys = SigningKeys::new(vec![
        SigningKey::from_pem(SigningAlg::EdDSA, key.serialize_pem().as_bytes(), None).expect("key"),
    ])
    .expect("one key");
    let flows = SignIn::new(
        Arc::new(directory),
        CodeMac::new(&[7u8; 32]).expect("long enough"),
        Arc::new(OsEntropy),
        Arc::new(SystemClock),
        policy(),
        otpgate::otp::GuessPolicy::default(),
        SignInSettings {
            issuer: "https://bench.invalid".to_owned(),
            assertion_ttl: Duration::from_secs(120),
            keys,
        },
        10_000_000,
    );
    let unknown = numbers(2_000).split_off(1_000);
    let otp = service();
    let mut group = c.benchmark_group("signin");
    group.throughput(Throughput::Elements(1));
    let mut next = 0usize;
    group.bench_function("otp_issue", |b| {
        b.iter(|| {
            next = (next + 1) % phones.len();
            otp.issue(&phones[next])
        })
    });
    group.bench_function("start_ready", |b| {
        b.iter(|| {
            next = (next + 1) % phones.len();
            flows.start("bench", &phones[next], "frontend")
        })
    });
    group.bench_function("start_decoy", |b| {
        b.iter(|| {
            next = (next + 1) % unknown.len();
            flows.start("bench", &unknown[next], "frontend")
        })
    });
    group.finish();
    drop(runtime);
}

criterion_group!(benches, otp, limits, wire, signin);
criterion_main!(benches);
