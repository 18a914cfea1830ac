//! AFL target: `otpgate_fuzz::targets::reassembly`.
fn main() {
    afl::fuzz!(|data: &[u8]| otpgate_fuzz::targets::reassembly(data));
}
