//! The fuzz targets' bodies: one function per parser of outside input. Each takes the raw bytes
//! a peer or a user could send and must neither panic nor hang; where a parser has an invariant
//! (a parsed number parses to itself), the target asserts it. The AFL binaries in `src/bin/`
//! call these; `tests/fuzz_corpora.rs` in the main crate replays every committed corpus file
//! through them on each `cargo test`.

use std::time::Duration;

use bytes::BytesMut;
use rusmpp::Pdu;
use smpp_wire::frame::{Frame, FrameCodec};
use tokio_util::codec::Decoder;

/// Phone numbers as clients type them: a valid number's E.164 form parses to itself, and its
/// masked form never shows it whole.
pub fn phone(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(number) = otpgate::phone::PhoneNumber::parse(text) {
        let again = otpgate::phone::PhoneNumber::parse(number.as_str())
            .expect("a normalised number parses again");
        assert_eq!(again, number, "normalising is idempotent");
        let masked = number.masked().to_string();
        assert_ne!(masked, number.as_str(), "a masked number is not the number");
    }
}

/// Every JSON body of the API, as `ApiJson` reads it (the first byte picks the route), then
/// each string in the document through the validators the handlers apply to fields.
pub fn json_body(data: &[u8]) {
    use otpgate::directory::{model, policy};
    use otpgate::http::{directory, otp, signin, sms};
    let Some((&route, body)) = data.split_first() else {
        return;
    };
    fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) {
        let _ = serde_json::from_slice::<T>(body);
    }
    match route % 13 {
        0 => parse::<otp::SendRequest>(body),
        1 => parse::<otp::VerifyRequest>(body),
        2 => parse::<sms::SmsRequest>(body),
        3 => parse::<signin::StartRequest>(body),
        4 => parse::<signin::CompleteRequest>(body),
        5 => parse::<directory::NewTenant>(body),
        6 => parse::<directory::Named>(body),
        7 => parse::<model::NewUser>(body),
        8 => parse::<model::UserPatch>(body),
        9 => parse::<directory::MemberRef>(body),
        10 => parse::<directory::NewPhoneMethod>(body),
        11 => parse::<directory::PhoneMethodPatch>(body),
        _ => parse::<policy::SmsPolicyPatch>(body),
    }
    let Ok(document) = serde_json::from_slice::<serde_json::Value>(body) else {
        return;
    };
    let mut strings = Vec::new();
    collect_strings(&document, &mut strings, 0);
    for text in strings {
        let _ = otpgate::phone::PhoneNumber::parse(text);
        let _ = otpgate::otp::Code::parse(text, 6);
        let _ = otpgate::template::is_locale(text);
        let _ = otpgate::directory::checks::check_tenant_id(text);
    }
}

fn collect_strings<'a>(value: &'a serde_json::Value, out: &mut Vec<&'a str>, depth: usize) {
    if depth > 64 {
        return;
    }
    match value {
        serde_json::Value::String(text) => out.push(text),
        serde_json::Value::Array(items) => {
            for item in items {
                collect_strings(item, out, depth + 1);
            }
        }
        serde_json::Value::Object(fields) => {
            for (key, item) in fields {
                out.push(key);
                collect_strings(item, out, depth + 1);
            }
        }
        _ => {}
    }
}

/// SMPP as the daemon's carrier session reads it from an SMSC: frames cut from the byte stream
/// (the length checked before anything is allocated), each decoded, and a deliver_sm or data_sm
/// read as a receipt or a mobile-originated message.
pub fn smpp_client(data: &[u8]) {
    let mut codec = FrameCodec::new(4096);
    let mut buffer = BytesMut::from(data);
    // A decoder that yields a frame consumes at least its 16-octet header: bounded.
    while let Ok(Some(frame)) = codec.decode(&mut buffer) {
        let Frame::Command(command) = frame else {
            continue;
        };
        match command.pdu() {
            Some(Pdu::DeliverSm(body)) => {
                let _ = smpp_wire::receipt::parse_deliver(
                    u8::from(body.esm_class),
                    u8::from(body.data_coding),
                    body.short_message().as_ref(),
                    body.tlvs(),
                );
            }
            Some(Pdu::DataSm(body)) => {
                let _ = smpp_wire::receipt::parse_deliver(
                    u8::from(body.esm_class),
                    u8::from(body.data_coding),
                    &[],
                    body.tlvs(),
                );
            }
            _ => {}
        }
    }
}

/// Receipt text (SMPP 3.4 Appendix B and the variants carriers send), with the esm_class,
/// data_coding and the receipted-id formats taken from the first bytes.
pub fn receipt_text(data: &[u8]) {
    let [esm_class, data_coding, text @ ..] = data else {
        return;
    };
    let parsed = smpp_wire::receipt::parse_deliver(*esm_class, *data_coding, text, &[]);
    if let smpp_wire::receipt::Parsed::Receipt(receipt) = parsed {
        let _ = smpp_wire::receipt::canonical_id(&receipt.message_id);
    }
    if let Ok(id) = std::str::from_utf8(text) {
        let _ = smpp_wire::receipt::canonical_id(id);
    }
}

/// GSM 03.38 septets, UCS-2 and every other data_coding as both sides decode them; text that
/// GSM 03.38 can carry survives encoding and decoding unchanged.
pub fn text_coding(data: &[u8]) {
    let Some((&data_coding, bytes)) = data.split_first() else {
        return;
    };
    let _ = smpp_wire::coding::decode(data_coding, bytes);
    let _ = smsc_sim::text::decode(data_coding, bytes);
    let _ = smpp_wire::gsm7::decode(bytes);
    let coding = smpp_wire::segment::choose(&String::from_utf8_lossy(bytes), data_coding & 1 == 1);
    let _ = smpp_wire::segment::decode(coding, bytes);
    if let Ok(text) = std::str::from_utf8(bytes)
        && let Ok(septets) = smpp_wire::gsm7::encode(text)
    {
        assert_eq!(
            smpp_wire::gsm7::decode(&septets),
            text,
            "GSM 03.38 round trip"
        );
    }
}

/// Concatenated messages as the simulator reassembles them: a segment's place from its UDH or
/// sar_* TLVs, then parts added to a bounded reassembly (several parts per input).
pub fn reassembly(data: &[u8]) {
    let assembler = smsc_sim::concat::Reassembly::new(8, Duration::from_secs(60));
    // Records of: esm_class, data_coding, length, body.
    let mut rest = data;
    while let [esm_class, data_coding, length, tail @ ..] = rest {
        let take = usize::from(*length).min(tail.len());
        let (body, next) = tail.split_at(take);
        rest = next;
        if let Some((Some(segment), user_data)) = smsc_sim::concat::split_udh(*esm_class, body) {
            let key = smsc_sim::concat::GroupKey {
                account: "fuzz".into(),
                from: "a".into(),
                to: "b".into(),
                reference: segment.reference,
                total: segment.total,
            };
            if let Some(parts) = assembler.add(
                key,
                *data_coding,
                segment.seq,
                String::new(),
                user_data.to_vec(),
            ) {
                assert!(!parts.is_empty());
                let joined: Vec<u8> = parts.iter().flat_map(|p| p.2.iter().copied()).collect();
                let _ = smsc_sim::text::decode(*data_coding, &joined);
            }
        }
    }
}

/// SMPP as the simulator reads it from an ESME, over a real socket: a bind, then the input as
/// it is, then a half-close; the simulator must answer, close within a second, and go on
/// serving the next connection.
pub struct Smsc {
    runtime: tokio::runtime::Runtime,
    addr: std::net::SocketAddr,
    _shutdown: tokio_util::sync::CancellationToken,
}

impl Smsc {
    pub fn start() -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a runtime");
        let shutdown = tokio_util::sync::CancellationToken::new();
        let addr = runtime.block_on(async {
            let smpp = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind SMPP");
            let http = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind HTTP");
            let addr = smpp.local_addr().expect("address");
            let config = smsc_sim::Config::from_toml(
                &format!(
                    "[smpp]\nlisten = \"{addr}\"\n[http]\nlisten = \"127.0.0.1:0\"\n\
                     [[accounts]]\nsystem_id = \"fuzz\"\npassword = \"fuzz\"\n"
                ),
                std::path::Path::new("fuzz.toml"),
            )
            .expect("simulator config");
            smsc_sim::start(
                config,
                smsc_sim::Listeners {
                    smpp,
                    tls: None,
                    http,
                },
                shutdown.clone(),
            );
            addr
        });
        Self {
            runtime,
            addr,
            _shutdown: shutdown,
        }
    }

    /// One connection: bind_transceiver, then `data`, then a half-close; reads what the
    /// simulator answers until it closes or a second passes.
    pub fn session(&self, data: &[u8]) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        self.runtime.block_on(async {
            let mut stream = tokio::net::TcpStream::connect(self.addr)
                .await
                .expect("the simulator accepts connections");
            let mut bind = Vec::new();
            let body = b"fuzz\0fuzz\0\0\x34\x00\x00\0";
            bind.extend_from_slice(&((16 + body.len()) as u32).to_be_bytes());
            bind.extend_from_slice(&0x0000_0009u32.to_be_bytes());
            bind.extend_from_slice(&0u32.to_be_bytes());
            bind.extend_from_slice(&1u32.to_be_bytes());
            bind.extend_from_slice(body);
            let _ = stream.write_all(&bind).await;
            let _ = stream.write_all(data).await;
            let _ = stream.shutdown().await;
            // After the input the client has half-closed: the simulator must answer what it
            // read and close within a second, not hold the socket (a hang AFL would miss).
            let mut sink = [0u8; 4096];
            let closed = tokio::time::timeout(Duration::from_secs(1), async {
                while let Ok(n) = stream.read(&mut sink).await {
                    if n == 0 {
                        break;
                    }
                }
            })
            .await;
            assert!(
                closed.is_ok(),
                "the simulator held a half-closed connection for a second"
            );
        });
    }
}
