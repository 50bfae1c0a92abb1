//! Codec errors. Every malformed input maps to one typed variant that names
//! what is wrong and, for datum errors, where (byte offset and field path).

/// Why bytes could not be decoded into an event.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DecodeError {
    #[error("event of {size} bytes exceeds the limit of {limit} bytes")]
    Oversize { size: usize, limit: usize },
    #[error("input of {len} bytes is too short for an Avro single-object header (10 bytes)")]
    TooShort { len: usize },
    #[error("wrong magic {found:02X?}: expected C3 01 (Avro single-object encoding)")]
    WrongMagic { found: [u8; 2] },
    #[error(
        "unknown schema fingerprint {fingerprint:#018x}: not one of the known envelope versions"
    )]
    UnknownFingerprint { fingerprint: u64 },
    #[error("truncated datum: needed {needed} more byte(s) at offset {offset} reading `{path}`")]
    Truncated {
        offset: usize,
        needed: usize,
        path: String,
    },
    #[error("{trailing} trailing byte(s) after the datum (datum ended at offset {offset})")]
    TrailingBytes { offset: usize, trailing: usize },
    #[error("wrong union branch {branch} at `{path}`: the union has {branches} branches")]
    UnionBranch {
        branch: i64,
        branches: usize,
        path: String,
    },
    #[error("invalid value at offset {offset} in `{path}`: {reason}")]
    InvalidValue {
        offset: usize,
        path: String,
        reason: String,
    },
    #[error("cannot resolve data written with envelope version {version}: {reason}")]
    Resolution { version: String, reason: String },
}

impl DecodeError {
    /// A short machine-readable code, used as the dead-letter reason code.
    pub fn code(&self) -> &'static str {
        match self {
            DecodeError::Oversize { .. } => "oversize",
            DecodeError::TooShort { .. } => "truncated",
            DecodeError::WrongMagic { .. } => "wrong_magic",
            DecodeError::UnknownFingerprint { .. } => "unknown_fingerprint",
            DecodeError::Truncated { .. } => "truncated",
            DecodeError::TrailingBytes { .. } => "trailing_bytes",
            DecodeError::UnionBranch { .. } => "bad_union_branch",
            DecodeError::InvalidValue { .. } => "invalid_value",
            DecodeError::Resolution { .. } => "unresolvable",
        }
    }
}

/// Why an event could not be encoded.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EncodeError {
    #[error("encoded event is {size} bytes, over the limit of {limit} bytes")]
    Oversize { size: usize, limit: usize },
    #[error("cannot encode: {0}")]
    Unsupported(String),
}

/// Problems with the schema files themselves (a build or packaging bug).
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("schema file {file} is not valid JSON: {reason}")]
    Json { file: String, reason: String },
    #[error("schema file {file} has no name")]
    Unnamed { file: String },
    #[error("type `{name}` is defined twice ({first} and {second})")]
    Duplicate {
        name: String,
        first: String,
        second: String,
    },
    #[error("invalid Avro schema {what}: {reason}")]
    Avro { what: String, reason: String },
}
