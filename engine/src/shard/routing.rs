//! Which shard owns an account: a stable hash of its name (FNV-1a 64), so routing needs no
//! lookup table and never changes for a given shard count.

pub(crate) fn shard_for_account(account: &str, shard_count: usize) -> usize {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let hash = account.bytes().fold(OFFSET_BASIS, |hash, byte| (hash ^ u64::from(byte)).wrapping_mul(PRIME));
    (hash % shard_count.max(1) as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routing_is_stable_and_spreads_accounts() {
        assert_eq!(shard_for_account("alice@example.org", 4), shard_for_account("alice@example.org", 4));
        let mut counts = [0; 4];
        for index in 0..4000 {
            counts[shard_for_account(&format!("user{index}@example.org"), 4)] += 1;
        }
        assert!(counts.iter().all(|count| (800..1200).contains(count)), "{counts:?}");
    }
}
