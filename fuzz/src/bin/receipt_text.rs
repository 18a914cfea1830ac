//! AFL target: `otpgate_fuzz::targets::receipt_text`.
fn main() {
    afl::fuzz!(|data: &[u8]| otpgate_fuzz::targets::receipt_text(data));
}
