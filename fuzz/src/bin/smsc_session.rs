//! AFL target: SMPP bytes to the simulator over a socket (`otpgate_fuzz::targets::Smsc`). The
//! simulator starts inside the first iteration, after AFL's fork server has forked: a runtime's
//! threads do not survive a fork.
fn main() {
    let smsc = std::sync::OnceLock::new();
    afl::fuzz!(|data: &[u8]| smsc
        .get_or_init(otpgate_fuzz::targets::Smsc::start)
        .session(data));
}
