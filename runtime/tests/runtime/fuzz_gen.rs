//! A generator of random, valid XDP programs for differential fuzzing, seeded and
//! reproducible (`generate(seed)` always returns the same program).
//!
//! Shape of a program:
//! - main: loads `data`/`data_end` from the context, checks `data + N <= data_end`
//!   (N <= the packet length), keeps the packet pointer in r9, initialises 64 bytes of
//!   stack and its scalar registers, runs a random body, folds the stack and r6..r8 into
//!   r0 and exits;
//! - 0..3 subprograms, each with its own initialised 64-byte frame and body; subprogram
//!   `i` calls only subprograms after it (no recursion, so the kernel accepts it).
//!
//! Bodies mix ALU/ALU64 (all operations, v4 sdiv/smod/movsx/bswap included), byte-order
//! operations, lddw, loads and stores on the stack (through r10 and through copies of
//! it) and on the packet (r9, in bounds; ldsx included), atomics on the stack with and
//! without fetch and cmpxchg, bpf_csum_diff on stack buffers, forward branches
//! (JMP and JMP32, if-then and if-then-else), bounded counting loops and calls.
//!
//! The generator tracks what the kernel's verifier tracks (which registers hold
//! initialised scalars, which hold pointers) so that the kernel accepts most programs.
//! A small share of programs carry one deliberately bad instruction (an out-of-bounds
//! packet or stack access, a misaligned atomic, a division by the constant 0): the
//! kernel rejects those, and the interpreter and the JIT must trap or compute alike.

use isa::RawInsn;

/// The packet every fuzz program runs on has this many bytes.
pub const PACKET_LEN: usize = 64;
/// Bytes of stack each function initialises and uses.
const FRAME_USE: i32 = 64;

/// A generated program: linked instructions and the start slots of its subprograms.
#[derive(Clone, Debug)]
pub struct Program {
    pub insns: Vec<RawInsn>,
    pub subprog_starts: Vec<usize>,
    /// The packet to run it on.
    pub packet: Vec<u8>,
}

/// splitmix64: small, fast and good enough for choosing instructions.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x5851_f42d_4c95_7f2d)
    }
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len() as u64) as usize]
    }
    /// An immediate biased towards edge cases.
    fn imm(&mut self) -> i32 {
        match self.below(10) {
            0 => 0,
            1 => 1,
            2 => -1,
            3 => i32::MIN,
            4 => i32::MAX,
            5 => self.below(64) as i32,
            6 => -(self.below(64) as i32),
            7 => 0x8000 + self.below(0x10000) as i32,
            _ => self.next() as i32,
        }
    }
    fn imm64(&mut self) -> u64 {
        match self.below(6) {
            0 => 0x8000_0000_0000_0000,
            1 => u64::MAX,
            2 => 0xffff_ffff,
            3 => 0x1_0000_0000,
            _ => self.next(),
        }
    }
}

fn raw(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> RawInsn {
    RawInsn {
        code,
        dst,
        src,
        off,
        imm,
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum K {
    Uninit,
    Scalar,
    /// A pointer into the current frame at r10 + offset.
    Stack(i32),
    /// A pointer the generator never does arithmetic on (ctx, packet, r10).
    Fixed,
}

fn meet(a: [K; 11], b: [K; 11]) -> [K; 11] {
    std::array::from_fn(|i| if a[i] == b[i] { a[i] } else { K::Uninit })
}

struct FnGen<'r> {
    rng: &'r mut Rng,
    code: Vec<RawInsn>,
    regs: [K; 11],
    /// Registers the body may not write (loop counters).
    locked: u16,
    is_main: bool,
    /// Packet bytes proven readable through r9 (main only).
    pkt_n: i32,
    /// Functions this one may call (indices into the program's functions).
    callees: Vec<usize>,
    /// (slot of a call instruction, callee index), patched after layout.
    calls: Vec<(usize, usize)>,
    /// Share of programs with one bad instruction.
    bad_done: bool,
    allow_bad: bool,
}

const ALU_OPS: &[u8] = &[
    0x00, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0x80, 0x90, 0xa0, 0xb0, 0xc0,
];
const JMP_OPS: &[u8] = &[
    0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0xa0, 0xb0, 0xc0, 0xd0,
];

impl FnGen<'_> {
    fn emit(&mut self, i: RawInsn) {
        self.code.push(i);
    }

    fn scalars(&self) -> Vec<u8> {
        (0..10u8)
            .filter(|&r| self.regs[r as usize] == K::Scalar)
            .collect()
    }

    fn writable(&self) -> Vec<u8> {
        (0..10u8)
            .filter(|&r| self.locked & (1 << r) == 0 && !(self.is_main && r == 9))
            .collect()
    }

    fn scalar(&mut self) -> u8 {
        let s = self.scalars();
        if s.is_empty() {
            // r0 is always made a scalar first; this is a fallback.
            self.emit(raw(0xb7, 0, 0, 0, 0));
            self.regs[0] = K::Scalar;
            return 0;
        }
        self.rng.pick(&s)
    }

    /// A writable register for a result; `needs_scalar` when its old value is read.
    fn dst(&mut self, needs_scalar: bool) -> Option<u8> {
        let w: Vec<u8> = self
            .writable()
            .into_iter()
            .filter(|&r| !needs_scalar || self.regs[r as usize] == K::Scalar)
            .collect();
        if w.is_empty() {
            None
        } else {
            Some(self.rng.pick(&w))
        }
    }

    fn alu(&mut self) {
        let wide = self.rng.chance(60);
        let class = if wide { 0x07 } else { 0x04 };
        let op = self.rng.pick(ALU_OPS);
        let needs = op != 0xb0;
        let Some(dst) = self.dst(needs) else { return };
        let use_reg = self.rng.chance(50);
        match op {
            0x80 => self.emit(raw(class | 0x80, dst, 0, 0, 0)),
            0x30 | 0x90 if use_reg => {
                let off = self.rng.chance(40) as i16;
                let src = self.scalar();
                self.emit(raw(class | op | 0x08, dst, src, off, 0));
            }
            0x30 | 0x90 => {
                let off = self.rng.chance(40) as i16;
                let mut imm = self.rng.imm();
                if imm == 0 && !(self.allow_bad && !self.bad_done && self.rng.chance(20)) {
                    imm = 3;
                }
                if imm == 0 {
                    self.bad_done = true;
                }
                self.emit(raw(class | op, dst, 0, off, imm));
            }
            0x60 | 0x70 | 0xc0 if !use_reg => {
                let imm = self.rng.below(if wide { 64 } else { 32 }) as i32;
                self.emit(raw(class | op, dst, 0, 0, imm));
            }
            0xb0 if use_reg && self.rng.chance(30) => {
                // movsx
                let bits = if wide {
                    self.rng.pick(&[8i16, 16, 32])
                } else {
                    self.rng.pick(&[8i16, 16])
                };
                let src = self.scalar();
                self.emit(raw(class | 0xb0 | 0x08, dst, src, bits, 0));
            }
            _ if use_reg => {
                let src = self.scalar();
                self.emit(raw(class | op | 0x08, dst, src, 0, 0));
            }
            _ => {
                let imm = self.rng.imm();
                self.emit(raw(class | op, dst, 0, 0, imm));
            }
        }
        self.regs[dst as usize] = K::Scalar;
    }

    fn endian(&mut self) {
        let Some(dst) = self.dst(true) else { return };
        let bits = self.rng.pick(&[16, 32, 64]);
        let code = self.rng.pick(&[0xd4u8, 0xdc, 0xd7]);
        self.emit(raw(code, dst, 0, 0, bits));
    }

    fn lddw(&mut self) {
        let Some(dst) = self.dst(false) else { return };
        let v = self.rng.imm64();
        self.emit(raw(0x18, dst, 0, 0, v as u32 as i32));
        self.emit(raw(0, 0, 0, 0, (v >> 32) as u32 as i32));
        self.regs[dst as usize] = K::Scalar;
    }

    /// A base register and offset for a `size`-byte stack access inside the frame.
    fn stack_slot(&mut self, size: i32) -> (u8, i16) {
        let slot = -(self.rng.below((FRAME_USE / size) as u64) as i32 + 1) * size;
        let ptrs: Vec<(u8, i32)> = (0..10u8)
            .filter_map(|r| match self.regs[r as usize] {
                K::Stack(o) => Some((r, o)),
                _ => None,
            })
            .collect();
        if !ptrs.is_empty() && self.rng.chance(40) {
            let (r, o) = self.rng.pick(&ptrs);
            return (r, (slot - o) as i16);
        }
        (10, slot as i16)
    }

    fn size(&mut self) -> (i32, u8) {
        self.rng
            .pick(&[(1, 0x10u8), (2, 0x08), (4, 0x00), (8, 0x18)])
    }

    fn stack_ptr(&mut self) {
        // Never r0: it must stay a scalar for the epilogue and the return value.
        let Some(dst) = self.dst(false).filter(|&d| d != 0) else {
            return;
        };
        let o = -(self.rng.below((FRAME_USE / 8) as u64) as i32) * 8;
        self.emit(raw(0xbf, dst, 10, 0, 0));
        if o != 0 {
            self.emit(raw(0x07, dst, 0, 0, o));
        }
        self.regs[dst as usize] = K::Stack(o);
    }

    fn mem(&mut self) {
        let (size, sz) = self.size();
        let on_pkt = self.is_main && self.pkt_n >= size && self.rng.chance(40);
        let (base, off) = if on_pkt {
            (9u8, self.rng.below((self.pkt_n - size + 1) as u64) as i16)
        } else {
            self.stack_slot(size)
        };
        match self.rng.below(3) {
            0 => {
                let Some(dst) = self.dst(false) else { return };
                let sx = size < 8 && self.rng.chance(30);
                let mode = if sx { 0x80 } else { 0x60 };
                self.emit(raw(0x01 | mode | sz, dst, base, off, 0));
                self.regs[dst as usize] = K::Scalar;
            }
            1 => {
                let src = self.scalar();
                self.emit(raw(0x63 | sz, base, src, off, 0));
            }
            _ => {
                let imm = self.rng.imm();
                self.emit(raw(0x62 | sz, base, 0, off, imm));
            }
        }
    }

    fn atomic(&mut self) {
        let wide = self.rng.chance(60);
        let size = if wide { 8 } else { 4 };
        let (base, off) = self.stack_slot(size);
        let op = self
            .rng
            .pick(&[0x00, 0x01, 0x40, 0x41, 0x50, 0x51, 0xa0, 0xa1, 0xe1, 0xf1]);
        let src = self.scalar();
        if op == 0xf1 && self.regs[0] != K::Scalar {
            return;
        }
        if op & 1 == 1 && op != 0xf1 && self.locked & (1 << src) != 0 {
            return;
        }
        if op & 1 == 1 && op != 0xf1 && self.is_main && src == 9 {
            return;
        }
        if op == 0xf1 && self.locked & 1 != 0 {
            return;
        }
        let code = if wide { 0xdb } else { 0xc3 };
        if op & 1 == 1 {
            // Not a valid comparison otherwise: the kernel's verifier (6.18) does not
            // carry the precision of a register an atomic fetch loads from a stack slot
            // back to that slot. When the slot holds a spilled constant, the fetched
            // register is that constant, a later path with another value in the slot is
            // pruned as "safe", and code only that path reaches is removed as dead: the
            // kernel then computes something else than the program says (fuzz_regress.rs
            // keeps the ten programs that showed it). A non-fetching atomic on the same
            // bytes first turns the slot into unknown bytes (STACK_MISC), so the fetched
            // value is unknown to the verifier and nothing is pruned on it.
            let src2 = self.scalar();
            let op2 = self.rng.pick(&[0x00, 0x40, 0x50, 0xa0]);
            self.emit(raw(code, base, src2, off, op2));
        }
        if op == 0xf1 && !wide {
            // Not a valid comparison otherwise: a 32-bit cmpxchg zero-extends r0, which
            // x86's `lock cmpxchg` leaves alone when it succeeds, so the kernel adds an
            // explicit zero-extension, but only where the verifier saw a 64-bit use of
            // r0; a use reached only on a path it pruned goes without, and the upper
            // half of the old r0 survives (fuzz_regress.rs, seeds 1592602027 and
            // 1593070445). Zero-extending r0 first makes both readings agree.
            self.emit(raw(0xbc, 0, 0, 0, 0));
        }
        self.emit(raw(code, base, src, off, op));
        if op == 0xf1 {
            self.regs[0] = K::Scalar;
        }
    }

    fn csum_diff(&mut self) {
        if self.locked & 0x3f != 0 {
            return;
        }
        // r1 = from, r2 = from_size, r3 = to, r4 = to_size, r5 = seed.
        let seed = self.scalar();
        self.emit(raw(0xbf, 5, seed, 0, 0));
        let fs = self.rng.pick(&[0, 4, 8, 16]);
        let ts = self.rng.pick(&[0, 4, 8, 16]);
        self.emit(raw(0xbf, 1, 10, 0, 0));
        self.emit(raw(0x07, 1, 0, 0, -16));
        self.emit(raw(0xb7, 2, 0, 0, fs));
        self.emit(raw(0xbf, 3, 10, 0, 0));
        self.emit(raw(0x07, 3, 0, 0, -32));
        self.emit(raw(0xb7, 4, 0, 0, ts));
        self.emit(raw(0x85, 0, 0, 0, 28));
        self.after_call();
    }

    fn after_call(&mut self) {
        for r in 1..=5 {
            self.regs[r] = K::Uninit;
        }
        self.regs[0] = K::Scalar;
    }

    fn call(&mut self) {
        if self.callees.is_empty() || self.locked & 0x3f != 0 {
            return;
        }
        let callee = self.rng.pick(&self.callees.clone());
        for r in 1..=5u8 {
            if self.regs[r as usize] != K::Scalar {
                let imm = self.rng.imm();
                self.emit(raw(0xb7, r, 0, 0, imm));
                self.regs[r as usize] = K::Scalar;
            }
        }
        self.calls.push((self.code.len(), callee));
        self.emit(raw(0x85, 0, 1, 0, 0));
        self.after_call();
    }

    /// A jump condition on scalars; returns the instruction with offset to patch.
    fn cond(&mut self) -> RawInsn {
        let wide = self.rng.chance(60);
        let class = if wide { 0x05 } else { 0x06 };
        let op = self.rng.pick(JMP_OPS);
        let dst = self.scalar();
        if self.rng.chance(50) {
            let src = self.scalar();
            raw(class | op | 0x08, dst, src, 0, 0)
        } else {
            let imm = self.rng.imm();
            raw(class | op, dst, 0, 0, imm)
        }
    }

    fn if_block(&mut self, budget: usize, in_loop: bool) {
        let c = self.cond();
        let at = self.code.len();
        self.emit(c);
        let before = self.regs;
        self.body(budget / 2 + 1, in_loop);
        if self.rng.chance(30) {
            // if-then-else: then-block ends with a jump over the else-block.
            let then_regs = self.regs;
            let ja = self.code.len();
            self.emit(raw(0x05, 0, 0, 0, 0));
            self.code[at].off = (self.code.len() - at - 1) as i16;
            self.regs = before;
            self.body(budget / 2 + 1, in_loop);
            let len = self.code.len() - ja - 1;
            if len > 0 && self.rng.chance(20) {
                // The same jump as gotol (JMP32|JA, offset in imm).
                self.code[ja] = raw(0x06, 0, 0, 0, len as i32);
            } else {
                self.code[ja].off = len as i16;
            }
            self.regs = meet(self.regs, then_regs);
        } else {
            self.code[at].off = (self.code.len() - at - 1) as i16;
            self.regs = meet(self.regs, before);
        }
    }

    fn loop_block(&mut self, budget: usize) {
        let free: Vec<u8> = [6u8, 7, 8]
            .into_iter()
            .filter(|&r| self.locked & (1 << r) == 0)
            .collect();
        if free.is_empty() {
            return;
        }
        let c = self.rng.pick(&free);
        let trips = self.rng.below(5) as i32 + 1;
        self.emit(raw(0xb7, c, 0, 0, 0));
        self.regs[c as usize] = K::Scalar;
        self.locked |= 1 << c;
        let head = self.code.len();
        self.body(budget.min(8), true);
        self.emit(raw(0x07, c, 0, 0, 1));
        let at = self.code.len();
        self.emit(raw(0xa5, c, 0, 0, trips));
        self.code[at].off = -((at + 1 - head) as i16);
        self.locked &= !(1 << c);
    }

    fn bad(&mut self) {
        self.bad_done = true;
        match self.rng.below(3) {
            0 if self.is_main => {
                // Past the packet's end.
                let Some(dst) = self.dst(false) else { return };
                let off = PACKET_LEN as i16 + self.rng.below(300) as i16;
                self.emit(raw(0x61, dst, 9, off, 0));
                self.regs[dst as usize] = K::Scalar;
            }
            1 => {
                // Above the frame: past the stack top in main, the caller's frame in a
                // subprogram.
                let Some(dst) = self.dst(false) else { return };
                let off = self.rng.below(200) as i16;
                self.emit(raw(0x79, dst, 10, off, 0));
                self.regs[dst as usize] = K::Scalar;
            }
            _ => {
                // A misaligned atomic.
                let src = self.scalar();
                self.emit(raw(0xdb, 10, src, -12, 0));
            }
        }
    }

    fn body(&mut self, budget: usize, in_loop: bool) {
        let n = self.rng.below(budget as u64 + 1) as usize;
        for _ in 0..n {
            if self.code.len() > 400 {
                return;
            }
            match self.rng.below(100) {
                0..=34 => self.alu(),
                35..=39 => self.endian(),
                40..=42 => self.lddw(),
                43..=62 => self.mem(),
                63..=69 => self.atomic(),
                70..=72 if !in_loop => self.stack_ptr(),
                73..=81 if budget > 2 => self.if_block(budget / 2, in_loop),
                82..=85 if !in_loop && budget > 3 => self.loop_block(budget / 2),
                86..=90 if !in_loop => self.call(),
                91..=92 if !in_loop => self.csum_diff(),
                93 if self.allow_bad && !self.bad_done => self.bad(),
                _ => self.alu(),
            }
        }
    }

    fn init_frame(&mut self) {
        for k in 1..=(FRAME_USE / 8) {
            let imm = self.rng.imm();
            self.emit(raw(0x7a, 10, 0, (-8 * k) as i16, imm));
        }
    }

    fn init_regs(&mut self, regs: &[u8]) {
        for &r in regs {
            if self.rng.chance(30) {
                let v = self.rng.imm64();
                self.emit(raw(0x18, r, 0, 0, v as u32 as i32));
                self.emit(raw(0, 0, 0, 0, (v >> 32) as u32 as i32));
            } else {
                let imm = self.rng.imm();
                self.emit(raw(0xb7, r, 0, 0, imm));
            }
            self.regs[r as usize] = K::Scalar;
        }
    }

    /// Folds the frame and r6..r8 into r0, then exits.
    fn epilogue(&mut self) {
        for k in 1..=(FRAME_USE / 8) {
            self.emit(raw(0x79, 1, 10, (-8 * k) as i16, 0));
            self.emit(raw(0x27, 0, 0, 0, 31));
            self.emit(raw(0xaf, 0, 1, 0, 0));
        }
        for r in 6..=8u8 {
            if self.regs[r as usize] == K::Scalar {
                self.emit(raw(0x0f, 0, r, 0, 0));
            }
        }
        self.emit(raw(0x95, 0, 0, 0, 0));
    }
}

/// One generated function: its code and its calls (slot, callee index).
type FnCode = (Vec<RawInsn>, Vec<(usize, usize)>);

/// The program for `seed`.
pub fn generate(seed: u64) -> Program {
    let mut rng = Rng::new(seed);
    let n_sub = rng.below(4) as usize;
    let allow_bad = rng.chance(4);
    let packet: Vec<u8> = (0..PACKET_LEN).map(|_| rng.next() as u8).collect();
    let mut funcs: Vec<FnCode> = Vec::new();
    let mut bad_done = false;
    for f in 0..=n_sub {
        let is_main = f == 0;
        let mut g = FnGen {
            rng: &mut rng,
            code: Vec::new(),
            regs: [K::Uninit; 11],
            locked: 0,
            is_main,
            pkt_n: 0,
            callees: (f + 1..=n_sub).collect(),
            calls: Vec::new(),
            bad_done,
            allow_bad,
        };
        g.regs[10] = K::Fixed;
        if is_main {
            g.regs[1] = K::Fixed;
            let n = g.rng.below(PACKET_LEN as u64 + 1) as i32;
            // r9 = data, r8 = data_end, r7 = data + n; exit early unless it fits.
            g.emit(raw(0x61, 9, 1, 0, 0));
            g.emit(raw(0x61, 8, 1, 4, 0));
            g.emit(raw(0xbf, 7, 9, 0, 0));
            g.emit(raw(0x07, 7, 0, 0, n));
            g.emit(raw(0xb7, 0, 0, 0, 1));
            g.emit(raw(0x2d, 7, 8, 1, 0));
            g.emit(raw(0x05, 0, 0, 1, 0));
            g.emit(raw(0x95, 0, 0, 0, 0));
            g.regs[9] = K::Fixed;
            g.pkt_n = n;
            g.init_frame();
            g.init_regs(&[0, 1, 2, 3, 4, 5, 6, 7, 8]);
        } else {
            for r in 1..=5 {
                g.regs[r] = K::Scalar;
            }
            g.init_frame();
            g.init_regs(&[0, 6, 7, 8, 9]);
        }
        let budget = if is_main { 40 } else { 16 };
        g.body(budget, false);
        g.epilogue();
        bad_done = g.bad_done;
        funcs.push((g.code, g.calls));
    }
    // Only subprograms some call reaches: the kernel refuses unreachable code.
    let mut reached = vec![false; funcs.len()];
    reached[0] = true;
    for f in 0..funcs.len() {
        if reached[f] {
            for &(_, callee) in &funcs[f].1 {
                reached[callee] = true;
            }
        }
    }
    // Layout: main, then the reached subprograms in order; patch the calls.
    let mut starts = vec![usize::MAX; funcs.len()];
    let mut insns = Vec::new();
    for (f, (code, _)) in funcs.iter().enumerate() {
        if reached[f] {
            starts[f] = insns.len();
            insns.extend_from_slice(code);
        }
    }
    for (f, (_, calls)) in funcs.iter().enumerate() {
        if !reached[f] {
            continue;
        }
        for &(at, callee) in calls {
            let pc = starts[f] + at;
            insns[pc].imm = (starts[callee] as i64 - pc as i64 - 1) as i32;
        }
    }
    let starts: Vec<usize> = starts.into_iter().filter(|&s| s != usize::MAX).collect();
    Program {
        insns,
        subprog_starts: starts[1..].to_vec(),
        packet,
    }
}
