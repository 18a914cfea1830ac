//! AFL target: `otpgate_fuzz::targets::smpp_client`.
fn main() {
    afl::fuzz!(|data: &[u8]| otpgate_fuzz::targets::smpp_client(data));
}
