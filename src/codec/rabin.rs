//! CRC-64-AVRO (the Rabin fingerprint of the Avro spec), used to identify a
//! writer schema in single-object encoding. Computed over the schema's
//! Parsing Canonical Form; written little-endian after `C3 01`.

const EMPTY: u64 = 0xc15d_213a_a4d7_a795;

const TABLE: [u64; 256] = {
    let mut table = [0u64; 256];
    let mut i = 0;
    while i < 256 {
        let mut fp = i as u64;
        let mut j = 0;
        while j < 8 {
            fp = (fp >> 1) ^ (EMPTY & (0u64.wrapping_sub(fp & 1)));
            j += 1;
        }
        table[i] = fp;
        i += 1;
    }
    table
};

/// The 64-bit Rabin fingerprint of `data`.
pub fn fingerprint(data: &[u8]) -> u64 {
    let mut fp = EMPTY;
    for &b in data {
        fp = (fp >> 8) ^ TABLE[((fp ^ b as u64) & 0xff) as usize];
    }
    fp
}

#[cfg(test)]
mod tests {
    use super::*;
    use apache_avro::rabin::Rabin;
    use apache_avro::Schema;

    #[test]
    fn matches_the_avro_reference() {
        // The spec's example: fingerprint of the canonical form of "int".
        for s in [
            r#""int""#,
            r#""null""#,
            r#"{"type":"record","name":"R","fields":[{"name":"a","type":"long"}]}"#,
        ] {
            let schema = Schema::parse_str(s).unwrap();
            let reference = schema.fingerprint::<Rabin>().bytes;
            let ours = fingerprint(schema.canonical_form().as_bytes()).to_le_bytes();
            assert_eq!(reference, ours, "{s}");
        }
    }
}
