//! SMPP on the wire, shared by the otpgate daemon and the smsc-sim simulator: frame cutting in front
//! of the rusmpp codec, GSM 03.38 text, and `command_status` names.

pub mod frame;
pub mod gsm7;
pub mod receipt;
pub mod segment;
pub mod status;

pub use frame::{Frame, FrameCodec, FrameError};
