//! Cuts SMPP frames by `command_length` and decodes exactly one command per frame.
//!
//! rusmpp's own `CommandCodec` ends the stream on a body it cannot decode and leaves the rest of
//! that frame in the buffer, which desynchronises every later read. Here a frame is always consumed
//! whole: a body that does not decode becomes [`Frame::Malformed`] (answered with `generic_nack` by
//! the session) and the next frame starts at the right byte. Only a header that cannot be trusted
//! (a length below 16 or above the configured maximum) is fatal, because then no boundary is known.

use bytes::{Buf, BytesMut};
use rusmpp::{
    Command, CommandId, CommandStatus,
    decode::{COctetStringDecodeError, DecodeError, DecodeErrorKind, DecodeWithLength},
    tokio_codec::CommandCodec,
};
use tokio_util::codec::{Decoder, Encoder};

/// Octets in the SMPP header: command_length, command_id, command_status, sequence_number.
pub const HEADER_LENGTH: usize = 16;

/// One frame read from the peer.
// A frame is moved once, from the decoder to its handler; boxing the common variant to shrink
// the rare one would add an allocation per PDU on the hot path.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Frame {
    /// A command that decoded; unknown command ids arrive as `Pdu::Other`.
    Command(Command),
    /// A frame whose header was readable but whose body was not.
    Malformed {
        command_id: CommandId,
        /// The frame's own `command_status`: for a response, whether the request succeeded.
        command_status: CommandStatus,
        sequence_number: u32,
        /// For a submit_sm_resp or data_sm_resp, its message_id read leniently (printable
        /// ASCII up to the NUL or the end, whatever its length): the receipt can still match.
        message_id: Option<String>,
        /// The `command_status` to put in the `generic_nack` for this frame.
        nack_status: CommandStatus,
        error: DecodeError,
    },
}

/// A read error after which the byte stream cannot be trusted; the session must end.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// The peer announced fewer octets than an SMPP header has.
    #[error("command_length {length} is shorter than the {HEADER_LENGTH}-octet header")]
    TooShort { length: u32 },
    /// The peer announced more octets than this side accepts (checked before allocating).
    #[error("command_length {length} exceeds the maximum of {max}")]
    TooLong { length: u32, max: usize },
}

/// Framing codec: bytes in, [`Frame`]s out; [`Command`]s in, bytes out.
#[derive(Debug)]
pub struct FrameCodec {
    max_length: usize,
    encoder: CommandCodec,
}

impl FrameCodec {
    /// A codec accepting frames of at most `max_length` octets (header included).
    pub fn new(max_length: usize) -> Self {
        Self {
            max_length: max_length.max(HEADER_LENGTH),
            encoder: CommandCodec::new(),
        }
    }
}

impl Decoder for FrameCodec {
    type Item = Frame;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        if src.len() < 4 {
            return Ok(None);
        }
        let length = u32::from_be_bytes([src[0], src[1], src[2], src[3]]);
        let length_usize = length as usize;
        if length_usize < HEADER_LENGTH {
            return Err(FrameError::TooShort { length });
        }
        if length_usize > self.max_length {
            return Err(FrameError::TooLong {
                length,
                max: self.max_length,
            });
        }
        if src.len() < length_usize {
            src.reserve(length_usize - src.len());
            return Ok(None);
        }
        let mut frame = src.split_to(length_usize);
        frame.advance(4);
        let command_id =
            CommandId::from(u32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]));
        let command_status =
            CommandStatus::from(u32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]));
        let sequence_number = u32::from_be_bytes([frame[8], frame[9], frame[10], frame[11]]);
        let body_length = length_usize - 4;
        // A copy on the stack of a response's first field (the message_id of submit_sm_resp
        // and data_sm_resp), read leniently if the body does not decode: no allocation.
        let mut head = [0u8; ID_PEEK];
        let peeked = if matches!(command_id, CommandId::SubmitSmResp | CommandId::DataSmResp) {
            let body = &frame[12..];
            let n = body.len().min(ID_PEEK);
            head[..n].copy_from_slice(&body[..n]);
            n
        } else {
            0
        };
        match Command::decode(&mut frame, body_length) {
            Ok((command, _)) => Ok(Some(Frame::Command(command))),
            Err(error) => Ok(Some(Frame::Malformed {
                command_id,
                command_status,
                sequence_number,
                nack_status: nack_status(&error),
                message_id: lenient_id(&head[..peeked]),
                error,
            })),
        }
    }
}

/// A response without a body: SMPP 3.4 §4 omits the body of (among others) submit_sm_resp,
/// data_sm_resp and query_sm_resp when `command_status` is an error, and real SMSCs do so.
/// rusmpp builds commands only with a body, so this one is decoded from its own header.
pub fn header_only(command_id: CommandId, status: CommandStatus, sequence_number: u32) -> Command {
    let mut header = BytesMut::with_capacity(12);
    header.extend_from_slice(&u32::from(command_id).to_be_bytes());
    header.extend_from_slice(&u32::from(status).to_be_bytes());
    header.extend_from_slice(&sequence_number.to_be_bytes());
    Command::decode(&mut header, 12)
        .map(|(command, _)| command)
        // Twelve octets are a whole header and an empty body decodes for every command id.
        .expect("a bare header decodes")
}

/// Octets of a response body kept for [`lenient_id`]: longer ids than SMPP's 64 are seen, and
/// kept up to this many.
const ID_PEEK: usize = 128;

fn lenient_id(bytes: &[u8]) -> Option<String> {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    let id = &bytes[..end];
    (!id.is_empty() && id.iter().all(|b| b.is_ascii_graphic()))
        .then(|| String::from_utf8_lossy(id).into_owned())
}

/// Which `command_status` best tells the peer what was wrong with a body that did not decode.
fn nack_status(error: &DecodeError) -> CommandStatus {
    match error.kind() {
        // The body ended before its mandatory fields did, or a C-string found no NUL before the
        // frame (or the field's limit) ended: the length does not fit the command.
        DecodeErrorKind::UnexpectedEof
        | DecodeErrorKind::COctetStringDecodeError(
            COctetStringDecodeError::NotNullTerminated
            | COctetStringDecodeError::TooFewBytes { .. },
        ) => CommandStatus::EsmeRinvcmdlen,
        DecodeErrorKind::TooManyElements { .. } => CommandStatus::EsmeRinvtlvstream,
        DecodeErrorKind::OctetStringDecodeError(_) => CommandStatus::EsmeRinvmsglen,
        // Non-ASCII C-strings, unknown enumerated values, bad UDH: SMPP 3.4 has no closer code.
        _ => CommandStatus::EsmeRsyserr,
    }
}

impl Encoder<&Command> for FrameCodec {
    type Error = std::io::Error;

    fn encode(&mut self, command: &Command, dst: &mut BytesMut) -> Result<(), Self::Error> {
        self.encoder.encode(command, dst).map_err(|err| match err {
            rusmpp::tokio_codec::EncodeError::Io(io) => io,
            other => std::io::Error::other(other.to_string()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusmpp::Pdu;

    fn encode(command: &Command) -> BytesMut {
        let mut buf = BytesMut::new();
        FrameCodec::new(4096)
            .encode(command, &mut buf)
            .expect("encoding to memory cannot fail");
        buf
    }

    #[test]
    fn header_only_responses_encode_as_sixteen_octets() {
        let command = header_only(CommandId::SubmitSmResp, CommandStatus::EsmeRinvmsglen, 7);
        assert!(command.pdu().is_none());
        let bytes = encode(&command);
        assert_eq!(
            &bytes[..],
            &[0, 0, 0, 16, 0x80, 0, 0, 4, 0, 0, 0, 1, 0, 0, 0, 7]
        );
    }

    fn header(length: u32, id: u32, seq: u32) -> Vec<u8> {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&length.to_be_bytes());
        bytes.extend_from_slice(&id.to_be_bytes());
        bytes.extend_from_slice(&0u32.to_be_bytes());
        bytes.extend_from_slice(&seq.to_be_bytes());
        bytes
    }

    #[test]
    fn waits_for_a_whole_frame_then_decodes_it() {
        let full = encode(&Command::new(CommandStatus::EsmeRok, 7, Pdu::EnquireLink));
        let mut codec = FrameCodec::new(4096);
        let mut buf = BytesMut::from(&full[..10]);
        assert!(
            codec
                .decode(&mut buf)
                .expect("partial frame is not an error")
                .is_none()
        );
        buf.extend_from_slice(&full[10..]);
        match codec.decode(&mut buf).expect("whole frame decodes") {
            Some(Frame::Command(command)) => {
                assert_eq!(command.id(), CommandId::EnquireLink);
                assert_eq!(command.sequence_number(), 7);
            }
            other => panic!("expected a command, got {other:?}"),
        }
        assert!(buf.is_empty());
    }

    #[test]
    fn a_malformed_body_is_consumed_whole_and_the_next_frame_still_decodes() {
        // submit_sm (0x04) whose body is 3 bytes of a service_type with no NUL: cannot decode.
        let mut bytes = header(19, 0x0000_0004, 42);
        bytes.extend_from_slice(b"abc");
        bytes.extend_from_slice(&encode(&Command::new(
            CommandStatus::EsmeRok,
            43,
            Pdu::EnquireLink,
        )));
        let mut buf = BytesMut::from(&bytes[..]);
        let mut codec = FrameCodec::new(4096);
        match codec.decode(&mut buf).expect("a bad body is not fatal") {
            Some(Frame::Malformed {
                command_id,
                sequence_number,
                ..
            }) => {
                assert_eq!(command_id, CommandId::SubmitSm);
                assert_eq!(sequence_number, 42);
            }
            other => panic!("expected a malformed frame, got {other:?}"),
        }
        match codec.decode(&mut buf).expect("next frame decodes") {
            Some(Frame::Command(command)) => assert_eq!(command.sequence_number(), 43),
            other => panic!("expected the enquire_link, got {other:?}"),
        }
    }

    #[test]
    fn lengths_outside_the_bounds_are_fatal_before_allocating() {
        let mut codec = FrameCodec::new(1024);
        let mut short = BytesMut::from(&header(8, 0x15, 1)[..]);
        assert!(matches!(
            codec.decode(&mut short),
            Err(FrameError::TooShort { length: 8 })
        ));
        let mut long = BytesMut::from(&header(u32::MAX, 0x15, 1)[..]);
        assert!(matches!(
            codec.decode(&mut long),
            Err(FrameError::TooLong { .. })
        ));
        assert!(
            long.capacity() < 1 << 20,
            "no allocation for a lying length"
        );
    }

    #[test]
    fn an_unknown_command_id_decodes_as_other() {
        let bytes = header(16, 0x0000_7777, 5);
        let mut buf = BytesMut::from(&bytes[..]);
        match FrameCodec::new(64)
            .decode(&mut buf)
            .expect("unknown id is not fatal")
        {
            Some(Frame::Command(command)) => assert_eq!(command.id(), CommandId::Other(0x7777)),
            other => panic!("expected Other, got {other:?}"),
        }
    }

    #[test]
    fn a_submit_sm_resp_with_an_overlong_id_keeps_its_id_and_header() {
        let id = "A".repeat(70);
        let mut bytes = Vec::new();
        let length = 16 + id.len() + 1;
        bytes.extend_from_slice(&(length as u32).to_be_bytes());
        bytes.extend_from_slice(&0x8000_0004u32.to_be_bytes());
        bytes.extend_from_slice(&0u32.to_be_bytes());
        bytes.extend_from_slice(&9u32.to_be_bytes());
        bytes.extend_from_slice(id.as_bytes());
        bytes.push(0);
        let mut buf = BytesMut::from(&bytes[..]);
        match FrameCodec::new(4096).decode(&mut buf).expect("not fatal") {
            Some(Frame::Malformed {
                command_id,
                command_status,
                sequence_number,
                message_id,
                ..
            }) => {
                assert_eq!(command_id, CommandId::SubmitSmResp);
                assert_eq!(command_status, CommandStatus::EsmeRok);
                assert_eq!(sequence_number, 9);
                assert_eq!(message_id.as_deref(), Some(id.as_str()));
            }
            other => panic!("expected a malformed frame, got {other:?}"),
        }
    }
}
