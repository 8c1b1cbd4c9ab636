//! Random tokens from the operating system.

/// `n` random bytes in hex (`2 * n` digits).
pub fn hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    getrandom::fill(&mut bytes).expect("BUG: the OS has no randomness");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn hex_tokens_are_long_and_differ() {
        let (a, b) = (super::hex(32), super::hex(32));
        assert_eq!(a.len(), 64);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
