//! Large buffers that are written once from start to end (a checkpoint's encoded index) ask
//! the kernel for transparent huge pages.
//!
//! A buffer of hundreds of MB comes fresh from `mmap`, and the first write to each 4 KiB page
//! faults. Encoding the index of two million messages into such a buffer took 128 ms, of which
//! about two thirds were those faults (clearing, LRU and cgroup accounting per page), while the
//! shard served nothing; in 2 MiB pages it took 56 ms (bench `encode_snapshot`,
//! bench/README.md, session 31). Where the kernel's THP setting is `madvise` (Ubuntu's
//! default, and this VM's), nothing gets huge pages without asking; with `always` asking
//! changes nothing, and with `never` the kernel ignores it.

/// The size of a transparent huge page on x86-64 and on arm64 with 4 KiB pages.
const HUGE_PAGE_BYTES: usize = 2 << 20;

/// Below this many bytes a buffer is left as it is. glibc serves requests above its mmap
/// threshold (which it raises up to 32 MiB) from fresh mappings, and smaller ones often from
/// its heap, where the pages were already touched and advice only splits the heap's mapping.
/// (At 200k messages, about 20 MB, advised and not measured the same within 5%.)
const ADVISED_BYTES_MIN: usize = 16 * HUGE_PAGE_BYTES;

/// An empty vector with room for `capacity` bytes, the whole 2 MiB pages of that room advised
/// for huge pages (`MADV_HUGEPAGE`) before anything is written to them.
pub fn vec_in_huge_pages(capacity: usize) -> Vec<u8> {
    let mut vector = Vec::with_capacity(capacity);
    advise_whole_huge_pages(&mut vector);
    vector
}

/// A vector of `length` zero bytes whose whole 2 MiB pages are advised for huge pages. Large
/// zeroed vectors come from `calloc`, which for a fresh mapping writes nothing: the pages are
/// still untouched when the advice is given, so the first touch (an O_DIRECT read filling the
/// buffer, or a write) faults each 2 MiB in at once instead of each 4 KiB.
pub(crate) fn zeroed_vec_in_huge_pages(length: usize) -> Vec<u8> {
    let mut vector = vec![0; length];
    advise_whole_huge_pages(&mut vector);
    vector
}

/// Advises the whole 2 MiB pages of `vector`'s room (its capacity), if it is large enough.
fn advise_whole_huge_pages(vector: &mut Vec<u8>) {
    if vector.capacity() < ADVISED_BYTES_MIN {
        return;
    }
    let base = vector.as_ptr() as usize;
    let skip = base.next_multiple_of(HUGE_PAGE_BYTES) - base;
    let length = vector.capacity().saturating_sub(skip) / HUGE_PAGE_BYTES * HUGE_PAGE_BYTES;
    if length > 0 {
        advise_huge_pages(vector, skip, length);
    }
}

/// `MADV_HUGEPAGE` over `length` bytes of `vector`'s capacity from `skip` on, a range of whole
/// pages. A kernel without THP refuses (`EINVAL`): the buffer then stays in small pages, which
/// is only slower.
#[allow(unsafe_code)]
fn advise_huge_pages(vector: &mut Vec<u8>, skip: usize, length: usize) {
    debug_assert!(skip + length <= vector.capacity());
    let start = vector.as_mut_ptr().wrapping_add(skip).cast::<std::ffi::c_void>();
    // SAFETY: `madvise` is unsafe because some advice (`MADV_DONTNEED`, `MADV_FREE`) discards
    // memory's contents. `MADV_HUGEPAGE` only asks the kernel to back the range with larger
    // pages; the contents and the mapping stay. The range lies inside `vector`'s allocation,
    // which the borrow keeps alive for the call.
    let advised = unsafe { rustix::mm::madvise(start, length, rustix::mm::Advice::LinuxHugepage) };
    if let Err(error) = advised {
        tracing::debug!(%error, "transparent huge pages refused; the buffer stays in small pages");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kernel's THP setting: `always`, `madvise` or `never` (`None` where it has none).
    fn transparent_huge_pages() -> Option<String> {
        let setting = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled").ok()?;
        let chosen = setting.split_whitespace().find(|word| word.starts_with('['))?;
        Some(chosen.trim_matches(['[', ']']).to_owned())
    }

    /// `AnonHugePages` of the mapping that holds `address`, in kB, from `/proc/self/smaps`.
    fn huge_kib_at(address: usize) -> Option<u64> {
        let smaps = std::fs::read_to_string("/proc/self/smaps").ok()?;
        let mut inside = false;
        for line in smaps.lines() {
            if let Some((range, _)) = line.split_once(' ')
                && let Some((low, high)) = range.split_once('-')
                && let (Ok(low), Ok(high)) = (usize::from_str_radix(low, 16), usize::from_str_radix(high, 16))
            {
                inside = (low..high).contains(&address);
            } else if inside && let Some(value) = line.strip_prefix("AnonHugePages:") {
                return value.trim().trim_end_matches("kB").trim().parse().ok();
            }
        }
        None
    }

    /// Where THP is `madvise` or `always`, the mapping holding `address` has huge pages:
    /// asked for, they are given while memory is free (the defrag setting makes the kernel
    /// compact for advised ranges). Elsewhere only the caller's checks of the contents count.
    fn assert_in_huge_pages_where_offered(address: usize) {
        let huge_kib = huge_kib_at(address);
        match transparent_huge_pages().as_deref() {
            Some("madvise" | "always") => {
                assert!(huge_kib.is_some_and(|kib| kib >= 2048), "no huge pages: {huge_kib:?} kB");
            }
            other => eprintln!("THP is {other:?} here: only the contents were checked"),
        }
    }

    #[test]
    fn an_advised_buffer_holds_what_is_written_and_gets_huge_pages_where_the_kernel_offers_them() {
        let length = ADVISED_BYTES_MIN + 3 * HUGE_PAGE_BYTES + 12_345;
        let mut buffer = vec_in_huge_pages(length);
        assert!(buffer.is_empty() && buffer.capacity() >= length);
        buffer.extend((0..length).map(|index| (index % 251) as u8));
        assert!(buffer.iter().enumerate().all(|(index, byte)| *byte == (index % 251) as u8));
        assert_in_huge_pages_where_offered(buffer.as_ptr() as usize + length / 2);
    }

    /// A zeroed buffer (a large `BlockBuffer`) is all zeroes, and once touched it sits in huge
    /// pages where the kernel offers them: the advice came before any page was faulted in.
    #[test]
    fn a_zeroed_buffer_reads_as_zeroes_and_gets_huge_pages_where_the_kernel_offers_them() {
        let length = ADVISED_BYTES_MIN + 5 * HUGE_PAGE_BYTES + 777;
        let mut buffer = zeroed_vec_in_huge_pages(length);
        assert_eq!(buffer.len(), length);
        assert!(buffer.iter().all(|byte| *byte == 0));
        for byte in buffer.iter_mut().step_by(4096) {
            *byte = 1;
        }
        assert_in_huge_pages_where_offered(buffer.as_ptr() as usize + length / 2);
    }

    #[test]
    fn small_buffers_are_left_alone() {
        for capacity in [0, 1, HUGE_PAGE_BYTES, ADVISED_BYTES_MIN - 1] {
            let buffer = vec_in_huge_pages(capacity);
            assert!(buffer.is_empty() && buffer.capacity() >= capacity);
        }
    }
}
