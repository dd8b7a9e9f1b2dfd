//! Little-endian primitive writer and bounds-checked reader shared by the record codecs.

/// Appends little-endian primitives and length-prefixed byte strings to a buffer.
#[derive(Debug, Default)]
pub struct ByteWriter {
    bytes: Vec<u8>,
}

impl ByteWriter {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_capacity(capacity: usize) -> Self {
        Self { bytes: Vec::with_capacity(capacity) }
    }

    /// A writer that appends to `bytes` (its contents are kept).
    pub fn appending_to(bytes: Vec<u8>) -> Self {
        Self { bytes }
    }

    pub fn u8(&mut self, value: u8) -> &mut Self {
        self.bytes.push(value);
        self
    }

    pub fn u32(&mut self, value: u32) -> &mut Self {
        self.bytes.extend_from_slice(&value.to_le_bytes());
        self
    }

    pub fn u64(&mut self, value: u64) -> &mut Self {
        self.bytes.extend_from_slice(&value.to_le_bytes());
        self
    }

    pub fn i64(&mut self, value: i64) -> &mut Self {
        self.bytes.extend_from_slice(&value.to_le_bytes());
        self
    }

    pub fn raw(&mut self, value: &[u8]) -> &mut Self {
        self.bytes.extend_from_slice(value);
        self
    }

    /// A u32 length then the bytes. Callers bound the length before writing.
    pub fn bytes(&mut self, value: &[u8]) -> &mut Self {
        let length = u32::try_from(value.len()).unwrap_or(u32::MAX);
        self.u32(length).raw(value)
    }

    pub fn string(&mut self, value: &str) -> &mut Self {
        self.bytes(value.as_bytes())
    }

    pub fn into_inner(self) -> Vec<u8> {
        self.bytes
    }
}

/// Reads little-endian primitives; every read is bounds-checked and fails with `Truncated`.
#[derive(Debug)]
pub struct ByteReader<'a> {
    bytes: &'a [u8],
    position: usize,
}

/// The input ended before a field did, or a field is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    #[error("input truncated at byte {position}")]
    Truncated { position: usize },
    #[error("field `{field}` is not valid")]
    Invalid { field: &'static str },
}

impl<'a> ByteReader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, position: 0 }
    }

    pub fn position(&self) -> usize {
        self.position
    }

    pub fn remaining(&self) -> &'a [u8] {
        self.bytes.get(self.position..).unwrap_or_default()
    }

    pub fn take(&mut self, length: usize) -> Result<&'a [u8], ReadError> {
        let end = self
            .position
            .checked_add(length)
            .filter(|end| *end <= self.bytes.len())
            .ok_or(ReadError::Truncated { position: self.position })?;
        let slice = &self.bytes[self.position..end];
        self.position = end;
        Ok(slice)
    }

    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], ReadError> {
        let slice = self.take(N)?;
        let mut array = [0; N];
        array.copy_from_slice(slice);
        Ok(array)
    }

    pub fn u8(&mut self) -> Result<u8, ReadError> {
        Ok(self.array::<1>()?[0])
    }

    pub fn u32(&mut self) -> Result<u32, ReadError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    pub fn u64(&mut self) -> Result<u64, ReadError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    pub fn i64(&mut self) -> Result<i64, ReadError> {
        Ok(i64::from_le_bytes(self.array()?))
    }

    /// A u32 length then that many bytes, refusing lengths above `bytes_max`.
    pub fn bytes(&mut self, bytes_max: usize, field: &'static str) -> Result<&'a [u8], ReadError> {
        let length = self.u32()? as usize;
        if length > bytes_max {
            return Err(ReadError::Invalid { field });
        }
        self.take(length)
    }

    pub fn string(&mut self, bytes_max: usize, field: &'static str) -> Result<String, ReadError> {
        let bytes = self.bytes(bytes_max, field)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| ReadError::Invalid { field })
    }

    /// Fails unless every byte was consumed: trailing bytes mean a codec mismatch.
    pub fn finish(&self, field: &'static str) -> Result<(), ReadError> {
        if self.position == self.bytes.len() { Ok(()) } else { Err(ReadError::Invalid { field }) }
    }
}
