//! dynamodb adapter (work in progress).
