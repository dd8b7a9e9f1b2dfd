//! Reads fuzz bytes as a structured input. Past the end every read yields zeroes, so any byte
//! string is a valid input and libFuzzer's mutations keep their meaning.

#[derive(Debug)]
pub struct Cursor<'a> {
    bytes: &'a [u8],
    position: usize,
}

impl<'a> Cursor<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, position: 0 }
    }

    pub fn is_empty(&self) -> bool {
        self.position >= self.bytes.len()
    }

    pub fn u8(&mut self) -> u8 {
        let value = self.bytes.get(self.position).copied().unwrap_or(0);
        self.position += 1;
        value
    }

    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }

    /// Up to `length` bytes (fewer at the end of the input).
    pub fn take(&mut self, length: usize) -> &'a [u8] {
        let start = self.position.min(self.bytes.len());
        let end = start.saturating_add(length).min(self.bytes.len());
        self.position = self.position.saturating_add(length);
        &self.bytes[start..end]
    }

    /// The bytes not read yet.
    pub fn rest(&mut self) -> &'a [u8] {
        let start = self.position.min(self.bytes.len());
        self.position = self.bytes.len();
        &self.bytes[start..]
    }
}
