//! CRC-32C (Castagnoli), one table for the program: the spool's records and the fingerprints of
//! saved read positions.

static CASTAGNOLI: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISCSI);

/// The CRC-32C of `parts` laid end to end.
pub fn crc32c(parts: &[&[u8]]) -> u32 {
    let mut d = CASTAGNOLI.digest();
    for p in parts {
        d.update(p);
    }
    d.finalize()
}
