//! AFL target: `otpgate_fuzz::targets::text_coding`.
fn main() {
    afl::fuzz!(|data: &[u8]| otpgate_fuzz::targets::text_coding(data));
}
