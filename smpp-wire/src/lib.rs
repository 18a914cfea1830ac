//! SMPP on the wire, shared by the otpgate daemon and the smsc-sim simulator: frame cutting in front
//! of the rusmpp codec, GSM 03.38 text, data_coding, delivery receipts and `command_status` names.

pub mod coding;
pub mod frame;
pub mod gsm7;
pub mod receipt;
pub mod segment;
pub mod status;

pub use frame::{Frame, FrameCodec, FrameError};
