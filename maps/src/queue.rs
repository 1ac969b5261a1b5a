//! QUEUE and STACK maps with the kernel's queue_stack_maps.c semantics.
//!
//! # Memory (offsets inside the map's data region)
//! ```text
//! 0   control block: lock u32 | head u32 | tail u32 | reserved (64 bytes)
//! 64  slots: (max_entries + 1) x round_up(value_size, 8)
//! ```
//! The kernel's ring: `head` is where the next push writes, `tail` the oldest
//! value; `head == tail` is empty, and one slot always stays free, so
//! `head + 1 == tail` (mod size) is full. A queue pops at `tail`, a stack at
//! `head - 1`. A push with `BPF_EXIST` on a full map drops the oldest value
//! (advances `tail`), for both kinds.
//!
//! # Concurrency
//! Every field and slot is read and written only by the holder of `lock` (a pid
//! spinlock, bounded wait, dead-owner takeover). Slots are copied with word-wise
//! atomics. `head` and `tail` are checked against the slot count under the lock,
//! so a corrupted store gives `MapError::Corrupt`, never an access outside the
//! map. A writer that dies mid-push leaves a slot half written and `head` not yet
//! advanced: the map stays consistent.

use std::sync::atomic::{AtomicU32, Ordering};

use crate::def::{Kind, BPF_EXIST, BPF_NOEXIST, QUEUE_CTRL_SIZE};
use crate::error::MapError;
use crate::map::Map;
use crate::mem;

impl Map {
    #[inline]
    fn qs_word(&self, off: usize) -> &AtomicU32 {
        // SAFETY: off < 12, inside the 64-byte control block at the start of the
        // data region of queue and stack maps, 4-aligned; store memory is only
        // accessed atomically.
        unsafe { AtomicU32::from_ptr(self.data.wrapping_add(off) as *mut u32) }
    }

    pub(crate) fn qs_lock(&self) -> &AtomicU32 {
        self.qs_word(0)
    }

    /// Slot `i` (< nelems, checked by the callers).
    fn qs_slot(&self, i: u32) -> *mut u8 {
        self.data
            .wrapping_add(QUEUE_CTRL_SIZE as usize)
            .wrapping_add(i as usize * self.vstride)
    }

    /// head and tail, checked against the slot count.
    fn qs_positions(&self) -> Result<(u32, u32), MapError> {
        let head = self.qs_word(4).load(Ordering::Relaxed);
        let tail = self.qs_word(8).load(Ordering::Relaxed);
        if head >= self.nelems || tail >= self.nelems {
            return Err(MapError::Corrupt {
                id: self.id,
                what: format!(
                    "queue head {head} or tail {tail} outside {} slots",
                    self.nelems
                ),
            });
        }
        Ok((head, tail))
    }

    /// The number of values held (for dumps and tests).
    pub(crate) fn qs_len(&self) -> Result<u32, MapError> {
        let _g = self.take_lock(self.qs_lock(), || "queue lock".into())?;
        let (head, tail) = self.qs_positions()?;
        Ok(if head >= tail {
            head - tail
        } else {
            self.nelems - tail + head
        })
    }

    /// `queue_stack_map_push_elem`: `BPF_ANY` fails with E2BIG when full,
    /// `BPF_EXIST` drops the oldest value to make room; other flags are EINVAL.
    ///
    /// # Safety
    /// `value` points to value_size readable bytes.
    pub(crate) unsafe fn qs_push(&self, value: *const u8, flags: u64) -> Result<(), MapError> {
        if flags & BPF_NOEXIST != 0 || flags > BPF_EXIST {
            return Err(MapError::InvalidFlags { id: self.id, flags });
        }
        let replace = flags & BPF_EXIST != 0;
        let _g = self.take_lock(self.qs_lock(), || "queue lock".into())?;
        let (head, mut tail) = self.qs_positions()?;
        let next = if head + 1 >= self.nelems { 0 } else { head + 1 };
        if next == tail {
            if !replace {
                return Err(MapError::TooBig {
                    id: self.id,
                    max_entries: self.max_entries,
                });
            }
            tail = if tail + 1 >= self.nelems { 0 } else { tail + 1 };
            self.qs_word(8).store(tail, Ordering::Relaxed);
        }
        // SAFETY: head < nelems: the slot is inside the map's data region (8-aligned,
        // vstride bytes); `value` has value_size bytes (caller's contract).
        unsafe { mem::store_words(self.qs_slot(head), value, self.value_size as usize) };
        self.qs_word(4).store(next, Ordering::Relaxed);
        Ok(())
    }

    /// `qs_get` for bpf(2): `out` is written only on success.
    pub(crate) fn qs_user_get(&self, out: &mut [u8], delete: bool) -> Result<(), MapError> {
        let mut v = vec![0u8; out.len()];
        self.qs_get(&mut v, delete)?;
        out.copy_from_slice(&v);
        Ok(())
    }

    /// `__queue_map_get` / `__stack_map_get`: copies the oldest (queue) or newest
    /// (stack) value to `out`, removing it when `delete`; an empty map zeroes
    /// `out` and fails with ENOENT.
    pub(crate) fn qs_get(&self, out: &mut [u8], delete: bool) -> Result<(), MapError> {
        let _g = self.take_lock(self.qs_lock(), || "queue lock".into())?;
        let (head, tail) = self.qs_positions()?;
        if head == tail {
            out.fill(0);
            return Err(MapError::NotFound { id: self.id });
        }
        let out = &mut out[..self.value_size as usize];
        let index = if self.kind == Kind::Queue {
            tail
        } else if head == 0 {
            self.nelems - 1
        } else {
            head - 1
        };
        // SAFETY: index < nelems: the slot is inside the map's data region, 8-aligned,
        // round_up(value_size, 8) bytes.
        unsafe { mem::load_words(out, self.qs_slot(index)) };
        if delete {
            if self.kind == Kind::Queue {
                let t = if tail + 1 >= self.nelems { 0 } else { tail + 1 };
                self.qs_word(8).store(t, Ordering::Relaxed);
            } else {
                self.qs_word(4).store(index, Ordering::Relaxed);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::def::*;
    use crate::{Map, MapDef, MapError, Store, StoreOptions};

    fn store() -> Store {
        Store::anonymous(StoreOptions {
            size: 4 << 20,
            ncpus: Some(2),
        })
        .expect("store")
    }

    fn map(s: &Store, t: u32, v: u32, max: u32) -> Map {
        s.create_map(&MapDef {
            map_type: t,
            key_size: 0,
            value_size: v,
            max_entries: max,
            name: "q".into(),
            ..Default::default()
        })
        .expect("create")
    }

    fn push(m: &Map, v: u32, flags: u64) -> Result<(), MapError> {
        m.push(&v.to_ne_bytes(), flags)
    }

    fn pop(m: &Map) -> Result<u32, MapError> {
        let mut b = [0xffu8; 4];
        m.pop(&mut b)?;
        Ok(u32::from_ne_bytes(b))
    }

    fn peek(m: &Map) -> Result<u32, MapError> {
        let mut b = [0u8; 4];
        m.lookup(&[], &mut b)?;
        Ok(u32::from_ne_bytes(b))
    }

    #[test]
    fn queue_is_fifo_and_stack_is_lifo() {
        let s = store();
        let q = map(&s, BPF_MAP_TYPE_QUEUE, 4, 3);
        let st = map(&s, BPF_MAP_TYPE_STACK, 4, 3);
        for m in [&q, &st] {
            for v in 1..=3 {
                push(m, v, BPF_ANY).expect("push");
            }
            assert_eq!(push(m, 4, BPF_ANY).map_err(|e| e.errno()), Err(libc::E2BIG));
        }
        assert_eq!(peek(&q).ok(), Some(1));
        assert_eq!(peek(&st).ok(), Some(3));
        assert_eq!((pop(&q).ok(), pop(&q).ok()), (Some(1), Some(2)));
        assert_eq!((pop(&st).ok(), pop(&st).ok()), (Some(3), Some(2)));
        // Wrap around the ring.
        for v in 10..=11 {
            push(&q, v, BPF_ANY).expect("push");
        }
        let got: Vec<u32> = (0..3).map(|_| pop(&q).expect("pop")).collect();
        assert_eq!(got, [3, 10, 11]);
        assert_eq!(pop(&q).map_err(|e| e.errno()), Err(libc::ENOENT));
    }

    #[test]
    fn exist_drops_the_oldest_and_flags_are_checked() {
        let s = store();
        for t in [BPF_MAP_TYPE_QUEUE, BPF_MAP_TYPE_STACK] {
            let m = map(&s, t, 4, 2);
            push(&m, 1, BPF_ANY).expect("push");
            push(&m, 2, BPF_ANY).expect("push");
            push(&m, 3, BPF_EXIST).expect("push replacing");
            let mut got = vec![pop(&m).expect("pop"), pop(&m).expect("pop")];
            if t == BPF_MAP_TYPE_STACK {
                got.reverse();
            }
            assert_eq!(got, [2, 3], "type {t}");
            assert_eq!(
                push(&m, 1, BPF_NOEXIST).map_err(|e| e.errno()),
                Err(libc::EINVAL)
            );
            assert_eq!(push(&m, 1, 4).map_err(|e| e.errno()), Err(libc::EINVAL));
            // Empty: bpf(2) leaves the output alone, a program's buffer is zeroed.
            let mut b = [0xaa; 4];
            assert_eq!(m.pop(&mut b).map_err(|e| e.errno()), Err(libc::ENOENT));
            assert_eq!(b, [0xaa; 4]);
            for delete in [false, true] {
                // SAFETY: b is 4 writable bytes, the map's value_size.
                let r = unsafe { m.prog_pop_peek(b.as_mut_ptr(), delete) };
                assert_eq!((r, b), (-i64::from(libc::ENOENT), [0; 4]));
                b = [0xaa; 4];
            }
            assert_eq!(m.delete(&[]).map_err(|e| e.errno()), Err(libc::EINVAL));
        }
    }

    #[test]
    fn creation_checks_follow_the_kernel() {
        let s = store();
        let def = |k, v, max, f| MapDef {
            map_type: BPF_MAP_TYPE_QUEUE,
            key_size: k,
            value_size: v,
            max_entries: max,
            map_flags: f,
            name: "q".into(),
            ..Default::default()
        };
        let errno = |d: MapDef| s.create_map(&d).err().map(|e| e.errno()).unwrap_or(0);
        assert_eq!(errno(def(4, 4, 1, 0)), libc::EINVAL);
        assert_eq!(errno(def(0, 0, 1, 0)), libc::EINVAL);
        assert_eq!(errno(def(0, 4, 0, 0)), libc::EINVAL);
        assert_eq!(errno(def(0, 4, 1, BPF_F_NO_PREALLOC)), libc::EINVAL);
        assert_eq!(errno(def(0, 4, 1, BPF_F_RDONLY_PROG)), 0);
        assert_eq!(errno(def(0, 5 << 20, 1, 0)), libc::E2BIG);
    }

    #[test]
    fn values_keep_their_bytes() {
        let s = store();
        let m = map(&s, BPF_MAP_TYPE_QUEUE, 11, 2);
        let v: Vec<u8> = (1..=11).collect();
        m.push(&v, BPF_ANY).expect("push");
        let mut out = [0u8; 11];
        m.pop(&mut out).expect("pop");
        assert_eq!(out.to_vec(), v);
    }
}
