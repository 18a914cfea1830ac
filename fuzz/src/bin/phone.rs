//! AFL target: `otpgate_fuzz::targets::phone`.
fn main() {
    afl::fuzz!(|data: &[u8]| otpgate_fuzz::targets::phone(data));
}
