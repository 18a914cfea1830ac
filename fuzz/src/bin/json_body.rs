//! AFL target: `otpgate_fuzz::targets::json_body`.
fn main() {
    afl::fuzz!(|data: &[u8]| otpgate_fuzz::targets::json_body(data));
}
