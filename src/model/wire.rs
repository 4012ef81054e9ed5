//! A zero-copy protobuf wire-format reader: varints, tags and field spans over a byte slice.
//! Every read is bounds-checked and reports the byte offset of a problem.
