//! Byte-level helpers shared by the journal and segment formats: little-endian integers,
//! LEB128 varints, bit-packed values, and a bounds-checked reader that reports where it
//! ran out.

/// Appends little-endian integers and varints to a buffer.
pub(crate) trait PutBytes {
    fn put_u8(&mut self, value: u8);
    fn put_u32(&mut self, value: u32);
    fn put_u64(&mut self, value: u64);
    fn put_i64(&mut self, value: i64);
    fn put_varint(&mut self, value: u64);
    /// A varint length followed by the bytes.
    fn put_bytes(&mut self, bytes: &[u8]);
}

impl PutBytes for Vec<u8> {
    fn put_u8(&mut self, value: u8) {
        self.push(value);
    }
    fn put_u32(&mut self, value: u32) {
        self.extend_from_slice(&value.to_le_bytes());
    }
    fn put_u64(&mut self, value: u64) {
        self.extend_from_slice(&value.to_le_bytes());
    }
    fn put_i64(&mut self, value: i64) {
        self.extend_from_slice(&value.to_le_bytes());
    }
    fn put_varint(&mut self, mut value: u64) {
        while value >= 0x80 {
            self.push((value as u8) | 0x80);
            value >>= 7;
        }
        self.push(value as u8);
    }
    fn put_bytes(&mut self, bytes: &[u8]) {
        self.put_varint(bytes.len() as u64);
        self.extend_from_slice(bytes);
    }
}

/// The reader ran past the end of its input or found a malformed varint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Truncated {
    /// Offset in the reader's input where the read started.
    pub offset: usize,
}

/// Reads what [`PutBytes`] wrote, never panicking on short or damaged input.
#[derive(Debug, Clone)]
pub(crate) struct ByteReader<'a> {
    bytes: &'a [u8],
    position: usize,
}

impl<'a> ByteReader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        ByteReader { bytes, position: 0 }
    }

    pub(crate) fn position(&self) -> usize {
        self.position
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.position >= self.bytes.len()
    }

    pub(crate) fn take(&mut self, len: usize) -> Result<&'a [u8], Truncated> {
        let end = self
            .position
            .checked_add(len)
            .filter(|end| *end <= self.bytes.len())
            .ok_or(Truncated {
                offset: self.position,
            })?;
        let slice = &self.bytes[self.position..end];
        self.position = end;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], Truncated> {
        let offset = self.position;
        self.take(N)?.try_into().map_err(|_| Truncated { offset })
    }

    pub(crate) fn u8(&mut self) -> Result<u8, Truncated> {
        Ok(self.array::<1>()?[0])
    }
    pub(crate) fn u32(&mut self) -> Result<u32, Truncated> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    pub(crate) fn u64(&mut self) -> Result<u64, Truncated> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    pub(crate) fn i64(&mut self) -> Result<i64, Truncated> {
        Ok(i64::from_le_bytes(self.array()?))
    }
    pub(crate) fn varint(&mut self) -> Result<u64, Truncated> {
        let offset = self.position;
        let mut value: u64 = 0;
        for shift in (0..64).step_by(7) {
            let byte = self.u8().map_err(|_| Truncated { offset })?;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(Truncated { offset })
    }
    pub(crate) fn bytes(&mut self) -> Result<&'a [u8], Truncated> {
        let offset = self.position;
        let len = usize::try_from(self.varint()?).map_err(|_| Truncated { offset })?;
        self.take(len)
    }
}

/// Reads the `index`-th fixed-width little-endian value of an array section.
pub(crate) fn u32_at(array: &[u8], index: usize) -> Option<u32> {
    let start = index.checked_mul(4)?;
    Some(u32::from_le_bytes(
        array.get(start..start + 4)?.try_into().ok()?,
    ))
}

pub(crate) fn u64_at(array: &[u8], index: usize) -> Option<u64> {
    let start = index.checked_mul(8)?;
    Some(u64::from_le_bytes(
        array.get(start..start + 8)?.try_into().ok()?,
    ))
}

pub(crate) fn i64_at(array: &[u8], index: usize) -> Option<i64> {
    u64_at(array, index).map(|value| value as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_read_back_as_written() {
        let mut bytes = Vec::new();
        bytes.put_u8(7);
        bytes.put_u32(0xdead_beef);
        bytes.put_u64(u64::MAX - 1);
        bytes.put_i64(-42);
        for value in [0, 1, 127, 128, 300, u64::MAX] {
            bytes.put_varint(value);
        }
        bytes.put_bytes(b"hello");
        let mut reader = ByteReader::new(&bytes);
        assert_eq!(reader.u8(), Ok(7));
        assert_eq!(reader.u32(), Ok(0xdead_beef));
        assert_eq!(reader.u64(), Ok(u64::MAX - 1));
        assert_eq!(reader.i64(), Ok(-42));
        for value in [0, 1, 127, 128, 300, u64::MAX] {
            assert_eq!(reader.varint(), Ok(value));
        }
        assert_eq!(reader.bytes(), Ok(&b"hello"[..]));
        assert!(reader.is_empty());
        assert!(reader.u8().is_err(), "reading past the end is an error");
    }

    #[test]
    fn a_length_past_the_end_is_reported_with_its_offset() {
        let mut bytes = Vec::new();
        bytes.put_varint(1_000);
        bytes.extend_from_slice(b"short");
        let mut reader = ByteReader::new(&bytes);
        assert!(reader.bytes().is_err());
    }
}

/// Packs values of up to 32 bits each, little-endian: bit `i` of the output is bit
/// `i % 8` of byte `i / 8`, the first value's lowest bit first.
#[derive(Default)]
pub(crate) struct BitWriter {
    bytes: Vec<u8>,
    pending: u64,
    pending_bits: u32,
}

impl BitWriter {
    /// Appends the low `width` (≤ 32) bits of `value`.
    pub(crate) fn push(&mut self, value: u32, width: u32) {
        debug_assert!(width <= 32);
        let value = u64::from(value) & ((1u64 << width) - 1);
        self.pending |= value << self.pending_bits;
        self.pending_bits += width;
        while self.pending_bits >= 8 {
            self.bytes.push(self.pending as u8);
            self.pending >>= 8;
            self.pending_bits -= 8;
        }
    }

    /// The packed bytes, the last one padded with zero bits.
    pub(crate) fn finish(mut self) -> Vec<u8> {
        if self.pending_bits > 0 {
            self.bytes.push(self.pending as u8);
        }
        self.bytes
    }
}

/// The `width` (≤ 32) bits of `bytes` from bit `start`, as [`BitWriter`] packs them; bits
/// past the end read as 0.
pub(crate) fn bits_at(bytes: &[u8], start: usize, width: u32) -> u32 {
    let mut word = [0u8; 8];
    let from = (start / 8).min(bytes.len());
    let available = &bytes[from..(from + 8).min(bytes.len())];
    word[..available.len()].copy_from_slice(available);
    let value = u64::from_le_bytes(word) >> (start % 8);
    (value & ((1u64 << width) - 1)) as u32
}
